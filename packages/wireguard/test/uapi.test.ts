import { describe, expect, test } from "vitest";
import { Endpoint } from "../src/api.js";
import fc from "fast-check";
import type { DeviceSnapshot, DeviceUpdate } from "../src/api.js";
import {
  UapiErrno,
  UapiError,
  UapiFramer,
  formatEndpoint,
  formatUapiErrno,
  formatUapiGet,
  parseEndpoint,
  parseUapiRequest,
} from "../src/uapi.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const key = (fill: number) => new Uint8Array(32).fill(fill);
const K1 = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";
const K2 = "b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33";
const PSK = "188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52";
const enc = new TextEncoder();

function set(update: string): DeviceUpdate {
  const r = parseUapiRequest(`set=1\n${update}\n`);
  if (r.op !== "set") throw new Error("not a set");
  return r.update;
}
function err(text: string): UapiError {
  try {
    parseUapiRequest(text);
  } catch (e) {
    if (e instanceof UapiError) return e;
    throw e;
  }
  throw new Error(`no error for ${JSON.stringify(text)}`);
}
const setErr = (body: string) => err(`set=1\n${body}\n`);

describe("parseUapiRequest", () => {
  test("get", () => {
    expect(parseUapiRequest("get=1\n\n")).toEqual({ op: "get" });
    expect(err("get=1\nx\n").errno).toBe(UapiErrno.INVALID);
    expect(err("GET=1\n\n").errno).toBe(UapiErrno.PROTOCOL);
    expect(err("").errno).toBe(UapiErrno.PROTOCOL);
  });

  test("every device and peer key", () => {
    const u = set(
      [
        `private_key=${K1}`,
        "listen_port=51820",
        "fwmark=4294967295",
        "replace_peers=true",
        `public_key=${K2}`,
        `preshared_key=${PSK}`,
        "endpoint=192.0.2.1:51820",
        "persistent_keepalive_interval=25",
        "replace_allowed_ips=true",
        "allowed_ip=10.0.0.1/8",
        "allowed_ip=fd7a:115c:a1e0::1/128",
        "protocol_version=1",
        `public_key=${K1.toUpperCase()}`,
        "update_only=true",
        "endpoint=[2001:DB8::1]:1",
        `public_key=${"00".repeat(32)}`,
        "remove=true",
        "",
      ].join("\n"),
    );
    // wireguard-go clamps a non-zero private key before storing it.
    const clamped = Buffer.from(K1, "hex");
    clamped[0] &= 248;
    clamped[31] = (clamped[31] & 127) | 64;
    expect(hex(u.privateKey!)).toBe(clamped.toString("hex"));
    expect(u.listenPort).toBe(51820);
    expect(u.fwmark).toBe(4294967295);
    expect(u.replacePeers).toBe(true);
    expect(u.peers).toHaveLength(3);
    const [a, b, c] = u.peers;
    expect(hex(a.publicKey)).toBe(K2);
    expect(hex(a.presharedKey!)).toBe(PSK);
    expect(a.endpoint).toMatchObject({ address: "192.0.2.1", port: 51820, family: 4, src: undefined });
    expect(a.persistentKeepaliveInterval).toBe(25);
    expect(a.replaceAllowedIps).toBe(true);
    expect(a.allowedIps).toEqual([
      { address: "10.0.0.0", family: 4, bits: 8 },
      { address: "fd7a:115c:a1e0::1", family: 6, bits: 128 },
    ]);
    expect(a.protocolVersion).toBe(1);
    expect(a.remove).toBe(false);
    expect(a.updateOnly).toBe(false);
    expect(hex(b.publicKey)).toBe(K1);
    expect(b.updateOnly).toBe(true);
    expect(b.endpoint).toMatchObject({ address: "2001:db8::1", port: 1, family: 6 });
    expect(b.presharedKey).toBeUndefined();
    expect(b.replaceAllowedIps).toBe(false);
    expect(c.remove).toBe(true);
  });

  test("an empty set changes nothing; zero keys mean remove", () => {
    expect(set("")).toEqual({ replacePeers: false, peers: [] });
    const u = set(`private_key=${"0".repeat(64)}\npublic_key=${K2}\npreshared_key=${"0".repeat(64)}\n`);
    expect(u.privateKey).toBeNull();
    expect(u.peers[0].presharedKey).toBeNull();
  });

  test("replace_allowed_ips drops the allowed_ip lines before it, as line-by-line application would", () => {
    const u = set(`public_key=${K2}\nallowed_ip=1.1.1.1/32\nreplace_allowed_ips=true\nallowed_ip=2.2.2.2/32\n`);
    expect(u.peers[0].allowedIps).toEqual([{ address: "2.2.2.2", family: 4, bits: 32 }]);
  });

  test("CRLF lines inside set are accepted (Go's line scanner drops the \\r)", () => {
    expect(parseUapiRequest(`set=1\nlisten_port=1\r\n\r\n`)).toEqual({ op: "set", update: { replacePeers: false, peers: [], listenPort: 1 } });
    // The operation line itself must be exactly "set=1\n" (wireguard-go compares the whole line).
    expect(err(`set=1\r\nlisten_port=1\r\n\r\n`).errno).toBe(UapiErrno.PROTOCOL);
  });

  test("every error case, with wireguard-go's errno and the line and key named", () => {
    const cases: [string, number, number, string | undefined][] = [
      ["garbage", UapiErrno.PROTOCOL, 2, undefined],
      ["private_key=abc", UapiErrno.INVALID, 2, "private_key"],
      [`private_key=${"g".repeat(64)}`, UapiErrno.INVALID, 2, "private_key"],
      [`private_key=${K1}00`, UapiErrno.INVALID, 2, "private_key"],
      ["listen_port=65536", UapiErrno.INVALID, 2, "listen_port"],
      ["listen_port=-1", UapiErrno.INVALID, 2, "listen_port"],
      ["listen_port=+1", UapiErrno.INVALID, 2, "listen_port"],
      ["listen_port=", UapiErrno.INVALID, 2, "listen_port"],
      ["listen_port= 1", UapiErrno.INVALID, 2, "listen_port"],
      ["fwmark=4294967296", UapiErrno.INVALID, 2, "fwmark"],
      ["fwmark=0x10", UapiErrno.INVALID, 2, "fwmark"],
      ["replace_peers=false", UapiErrno.INVALID, 2, "replace_peers"],
      ["bogus=1", UapiErrno.INVALID, 2, "bogus"],
      ["=1", UapiErrno.INVALID, 2, ""],
      ["protocol_version=1", UapiErrno.INVALID, 2, "protocol_version"], // a peer key before any peer
      ["public_key=00", UapiErrno.INVALID, 2, "public_key"],
      [`public_key=${K2}\nlisten_port=1`, UapiErrno.INVALID, 3, "listen_port"], // device key after a peer
      [`public_key=${K2}\nremove=yes`, UapiErrno.INVALID, 3, "remove"],
      [`public_key=${K2}\nupdate_only=1`, UapiErrno.INVALID, 3, "update_only"],
      [`public_key=${K2}\nreplace_allowed_ips=false`, UapiErrno.INVALID, 3, "replace_allowed_ips"],
      [`public_key=${K2}\npreshared_key=xyz`, UapiErrno.INVALID, 3, "preshared_key"],
      [`public_key=${K2}\nendpoint=example.com:51820`, UapiErrno.INVALID, 3, "endpoint"],
      [`public_key=${K2}\nendpoint=1.2.3.4`, UapiErrno.INVALID, 3, "endpoint"],
      [`public_key=${K2}\nendpoint=1.2.3.4:65536`, UapiErrno.INVALID, 3, "endpoint"],
      [`public_key=${K2}\nendpoint=::1:51820`, UapiErrno.INVALID, 3, "endpoint"],
      [`public_key=${K2}\nendpoint=[1.2.3.4]:51820`, UapiErrno.INVALID, 3, "endpoint"],
      [`public_key=${K2}\npersistent_keepalive_interval=65536`, UapiErrno.INVALID, 3, "persistent_keepalive_interval"],
      [`public_key=${K2}\nallowed_ip=10.0.0.0`, UapiErrno.INVALID, 3, "allowed_ip"],
      [`public_key=${K2}\nallowed_ip=10.0.0.0/33`, UapiErrno.INVALID, 3, "allowed_ip"],
      [`public_key=${K2}\nallowed_ip=-10.0.0.0/8`, UapiErrno.INVALID, 3, "allowed_ip"],
      [`public_key=${K2}\nprotocol_version=2`, UapiErrno.INVALID, 3, "protocol_version"],
      [`public_key=${K2}\nlast_handshake_time_sec=1`, UapiErrno.INVALID, 3, "last_handshake_time_sec"],
      [`public_key=${K2}\nnoequals`, UapiErrno.PROTOCOL, 3, undefined],
    ];
    for (const [body, errno, line, k] of cases) {
      const e = setErr(body + "\n");
      expect(e.errno, body).toBe(errno);
      expect(e.code, body).toBe(errno === UapiErrno.INVALID ? "UAPI_INVALID" : "UAPI_PROTOCOL");
      expect(e.line, body).toBe(line);
      expect(e.key, body).toBe(k);
      expect(e.message, body).toContain(`line ${line}:`);
      if (k) expect(e.message, body).toContain(k);
    }
    expect(err("set=1\nlisten_port=1\n").errno).toBe(UapiErrno.PROTOCOL); // no empty line
    expect(err("set=1\n\nget=1\n\n").errno).toBe(UapiErrno.PROTOCOL); // trailing data
  });

  test("endpoints as Go's netip.ParseAddrPort, printed as Go prints them", () => {
    expect(parseEndpoint("1.2.3.4:0")).toMatchObject({ address: "1.2.3.4", port: 0, family: 4 });
    expect(parseEndpoint("[::ffff:1.2.3.4]:7")).toMatchObject({ address: "::ffff:1.2.3.4", port: 7, family: 6 });
    expect(parseEndpoint("[fe80::1%eth0]:51820")).toMatchObject({ address: "fe80::1%eth0", port: 51820, family: 6 });
    expect(parseEndpoint("1.2.3.4:051820")).toMatchObject({ address: "1.2.3.4", port: 51820, family: 4 }); // Go's ParseUint allows leading zeros
    expect(parseEndpoint("[::1]51820")).toBeNull();
    expect(parseEndpoint("[]:1")).toBeNull();
    expect(formatEndpoint(Endpoint.fromAddress("2001:0db8::0001", 5)!)).toBe("[2001:db8::1]:5");
    expect(formatEndpoint(Endpoint.fromAddress("fe80::1%eth0", 5)!)).toBe("[fe80::1%eth0]:5");
    expect(formatEndpoint(Endpoint.fromAddress("10.0.0.1", 5)!)).toBe("10.0.0.1:5");
  });

  test("a config with 70,000 allowed IPs parses quickly and completely", () => {
    const lines = [`private_key=${K1}`, "listen_port=51820", "replace_peers=true", `public_key=${K2}`, "replace_allowed_ips=true"];
    for (let i = 0; i < 70_000; i++) lines.push(`allowed_ip=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
    const text = `set=1\n${lines.join("\n")}\n\n`;
    const framer = new UapiFramer();
    const bytes = enc.encode(text);
    const frames = [];
    for (let o = 0; o < bytes.length; o += 65536) frames.push(...framer.push(bytes.subarray(o, o + 65536)));
    expect(frames).toHaveLength(1);
    const t0 = performance.now();
    const r = parseUapiRequest((frames[0] as { text: string }).text);
    const ms = performance.now() - t0;
    if (r.op !== "set") throw new Error("expected set");
    expect(r.update.peers[0].allowedIps).toHaveLength(70_000);
    expect(r.update.peers[0].allowedIps[69_999]).toEqual({ address: "10.1.17.111", family: 4, bits: 32 });
    console.log(`parsed 70,000 allowed IPs in ${ms.toFixed(1)} ms`);
  });
});

describe("formatUapiGet / formatUapiErrno", () => {
  const snap: DeviceSnapshot = {
    privateKey: key(0x11),
    listenPort: 51820,
    fwmark: 0,
    peers: [
      {
        publicKey: key(0x22),
        presharedKey: null,
        endpoint: Endpoint.fromAddress("::1", 9)!,
        persistentKeepaliveInterval: 25,
        allowedIps: [
          { address: "10.0.0.0", family: 4, bits: 8 },
          { address: "fd7a:115c:a1e0::", family: 6, bits: 48 },
        ],
        lastHandshakeTimeSec: 1700000000,
        lastHandshakeTimeNsec: 123456789,
        rxBytes: 18446744073709551615n,
        txBytes: 42n,
        protocolVersion: 1,
      },
      {
        publicKey: key(0x33),
        presharedKey: key(0x44),
        endpoint: null,
        persistentKeepaliveInterval: 0,
        allowedIps: [],
        lastHandshakeTimeSec: 0,
        lastHandshakeTimeNsec: 0,
        rxBytes: 0n,
        txBytes: 0n,
        protocolVersion: 1,
      },
    ],
  };

  test("wireguard-go's field order", () => {
    expect(formatUapiGet(snap)).toBe(
      [
        `private_key=${"11".repeat(32)}`,
        "listen_port=51820",
        `public_key=${"22".repeat(32)}`,
        `preshared_key=${"00".repeat(32)}`,
        "protocol_version=1",
        "endpoint=[::1]:9",
        "last_handshake_time_sec=1700000000",
        "last_handshake_time_nsec=123456789",
        "tx_bytes=42",
        "rx_bytes=18446744073709551615",
        "persistent_keepalive_interval=25",
        "allowed_ip=10.0.0.0/8",
        "allowed_ip=fd7a:115c:a1e0::/48",
        `public_key=${"33".repeat(32)}`,
        `preshared_key=${"44".repeat(32)}`,
        "protocol_version=1",
        "last_handshake_time_sec=0",
        "last_handshake_time_nsec=0",
        "tx_bytes=0",
        "rx_bytes=0",
        "persistent_keepalive_interval=0",
        "errno=0",
        "",
        "",
      ].join("\n"),
    );
  });

  test("no private key, port 0 and fwmark 0 are omitted; a fwmark is printed", () => {
    expect(formatUapiGet({ privateKey: null, listenPort: 0, fwmark: 0, peers: [] })).toBe("errno=0\n\n");
    expect(formatUapiGet({ privateKey: key(0), listenPort: 0, fwmark: 7, peers: [] })).toBe("fwmark=7\nerrno=0\n\n");
  });

  test("errno trailers are negative on the wire, as wireguard-go writes them", () => {
    expect(formatUapiErrno(0)).toBe("errno=0\n\n");
    expect(formatUapiErrno(UapiErrno.INVALID)).toBe("errno=-22\n\n");
    expect(formatUapiErrno(-71)).toBe("errno=-71\n\n");
  });

  test("round trip: a get reply's peer lines, replayed as a set, give back the same peers", () => {
    const text = formatUapiGet(snap);
    const setLines = text
      .split("\n")
      .filter((l) => /^(public_key|preshared_key|endpoint|persistent_keepalive_interval|allowed_ip|protocol_version)=/.test(l));
    const u = set(setLines.join("\n") + "\n");
    expect(u.peers.map((p) => hex(p.publicKey))).toEqual(["22".repeat(32), "33".repeat(32)]);
    expect(u.peers[0].presharedKey).toBeNull();
    expect(hex(u.peers[1].presharedKey!)).toBe("44".repeat(32));
    expect(u.peers[0].endpoint).toEqual(snap.peers[0].endpoint);
    expect(u.peers[0].allowedIps).toEqual(snap.peers[0].allowedIps);
    expect(u.peers[0].persistentKeepaliveInterval).toBe(25);
  });
});

describe("UapiFramer", () => {
  const feed = (f: UapiFramer, s: string) => f.push(enc.encode(s));

  test("splits pipelined requests across arbitrary chunk boundaries", () => {
    const stream = `get=1\n\nset=1\nlisten_port=1\r\n\r\nset=1\nfwmark=2\n\nget=1\n\n`;
    for (let cut = 1; cut < stream.length; cut++) {
      const f = new UapiFramer();
      const frames = [...feed(f, stream.slice(0, cut)), ...feed(f, stream.slice(cut))];
      expect(frames).toEqual([
        { type: "request", text: "get=1\n\n" },
        { type: "request", text: "set=1\nlisten_port=1\r\n\r\n" },
        { type: "request", text: "set=1\nfwmark=2\n\n" },
        { type: "request", text: "get=1\n\n" },
      ]);
    }
  });

  test("byte-by-byte feeding of a set", () => {
    const f = new UapiFramer();
    const out = [];
    for (const b of enc.encode("set=1\nlisten_port=7\n\n")) out.push(...f.push(new Uint8Array([b])));
    expect(out).toEqual([{ type: "request", text: "set=1\nlisten_port=7\n\n" }]);
    expect(parseUapiRequest((out[0] as { text: string }).text)).toEqual({ op: "set", update: { replacePeers: false, peers: [], listenPort: 7 } });
  });

  test("get followed by a byte other than a newline: EINVAL reply, byte skipped, stream goes on", () => {
    const f = new UapiFramer();
    const frames = feed(f, "get=1\nXget=1\n\n");
    expect(frames[0]).toMatchObject({ type: "error", reply: true, close: false, error: { errno: UapiErrno.INVALID } });
    expect(frames[1]).toEqual({ type: "request", text: "get=1\n\n" });
  });

  test("unknown operation: close without reply, later input ignored", () => {
    const f = new UapiFramer();
    const frames = feed(f, "hello\nget=1\n\n");
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ type: "error", reply: false, close: true, error: { code: "UAPI_PROTOCOL" } });
    expect(f.closed).toBe(true);
    expect(feed(f, "get=1\n\n")).toEqual([]);
    expect(new UapiFramer().push(enc.encode("x".repeat(100)))[0]).toMatchObject({ type: "error", close: true });
  });

  test("size cap: EIO reply then close", () => {
    const f = new UapiFramer({ maxRequestBytes: 100 });
    const frames = feed(f, "set=1\n" + "allowed_ip=10.0.0.0/8\n".repeat(10));
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ type: "error", reply: true, close: true, error: { errno: UapiErrno.IO } });
  });

  test("end of stream completes a pending set, as wireguard-go applies it at EOF", () => {
    const f = new UapiFramer();
    expect(feed(f, "set=1\nlisten_port=5")).toEqual([]);
    expect(f.end()).toEqual([{ type: "request", text: "set=1\nlisten_port=5\n\n" }]);
    expect(new UapiFramer().end()).toEqual([]);
  });
});

describe("fuzz", () => {
  const keys = ["private_key", "listen_port", "fwmark", "replace_peers", "public_key", "remove", "update_only", "preshared_key", "endpoint", "persistent_keepalive_interval", "replace_allowed_ips", "allowed_ip", "protocol_version", "errno", ""];
  const values = fc.oneof(
    fc.constantFrom(K1, K2, "0".repeat(64), "true", "false", "1", "0", "65535", "65536", "10.0.0.1/8", "::/0", "[::1]:5", "1.2.3.4:5", "-1.2.3.4/32", ""),
    fc.string({ maxLength: 70 }),
    fc.string({ unit: fc.constantFrom(..."0123456789abcdef:./[]%-"), maxLength: 70 }),
  );
  const line = fc.oneof(fc.tuple(fc.constantFrom(...keys), values).map(([k, v]) => `${k}=${v}`), fc.string({ maxLength: 30 }));

  test("structured garbage: parseUapiRequest returns or throws UapiError, nothing else", () => {
    fc.assert(
      fc.property(fc.constantFrom("set=1\n", "get=1\n", "", "set=1\r\n"), fc.array(line, { maxLength: 12 }), fc.constantFrom("\n", "\n\n", ""), (head, lines, tail) => {
        const text = head + lines.join("\n") + tail;
        try {
          parseUapiRequest(text);
        } catch (e) {
          expect(e).toBeInstanceOf(UapiError);
          expect([5, 22, 71]).toContain((e as UapiError).errno);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("random bytes through the framer and the parser never throw", () => {
    const chunk = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.constantFrom("get=1\n", "set=1\n", "\n", "\r\n", `public_key=${K2}\n`, "allowed_ip=1.2.3.4/32\n").map((s) => enc.encode(s)),
    );
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 20 }), (chunks) => {
        const f = new UapiFramer({ maxRequestBytes: 512 });
        const frames = chunks.flatMap((c) => f.push(c)).concat(f.end());
        for (const fr of frames) {
          if (fr.type === "error") {
            expect(fr.error).toBeInstanceOf(UapiError);
            continue;
          }
          try {
            parseUapiRequest(fr.text);
          } catch (e) {
            expect(e).toBeInstanceOf(UapiError);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });
});
