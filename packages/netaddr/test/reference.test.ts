import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { isIP, SocketAddress } from "node:net";
import { ENDPOINT_BYTES, Endpoint, formatIp, formatPrefix, parseIp, parsePrefix, prefixContains } from "../src/index.js";

/** 16 bytes biased towards zero runs and the IPv4-mapped / -compatible forms. */
const v6bytes = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.constantFrom("plain", "sparse", "mapped", "compat", "zeros"))
  .map(([b, kind]) => {
    const out = Uint8Array.from(b);
    if (kind === "sparse") for (let i = 0; i < 16; i++) if (b[i]! & 1) out[i] = 0;
    if (kind === "mapped" || kind === "compat") out.fill(0, 0, 12);
    if (kind === "mapped") out[10] = out[11] = 0xff;
    if (kind === "zeros") out.fill(0, 0, 14);
    return out;
  });
const v4bytes = fc.uint8Array({ minLength: 4, maxLength: 4 });

/** Node's (libuv inet_ntop) canonical text of an address. */
const nodeText = (text: string, v6: boolean): string => new SocketAddress({ address: text, family: v6 ? "ipv6" : "ipv4" }).address;

describe("netaddr against Node's net module", () => {
  test("property: IPv6 text is RFC 5952 and equals Node's canonical form (Go's hex form for IPv4-compatible)", () => {
    fc.assert(
      fc.property(v6bytes, (b) => {
        const text = formatIp(b);
        expect(isIP(text)).toBe(6);
        expect(text).toBe(text.toLowerCase());
        expect(Array.from(parseIp(text)!.bytes)).toEqual(Array.from(b));
        // libuv prints the deprecated IPv4-compatible form (::a.b.c.d, RFC 4291 §2.5.5.1)
        // as a dotted quad; Go's netip, and so Lattice, prints hex groups (::102:304).
        const compat = b.subarray(0, 12).every((x) => x === 0) && (b[12] !== 0 || b[13] !== 0);
        if (!compat) expect(text).toBe(nodeText(text, true));
        // Any text form Node accepts for these bytes parses to them.
        expect(Array.from(parseIp(nodeText(text, true))!.bytes)).toEqual(Array.from(b));
      }),
      { numRuns: 3000 },
    );
  });

  test("zero compression: the first longest run of ≥ 2 zero groups; v4-mapped as ::ffff:a.b.c.d", () => {
    const cases: [string, string][] = [
      ["2001:0DB8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
      ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"],
      ["0:0:0:0:0:ffff:102:304", "::ffff:1.2.3.4"],
      ["::ffff:0:1.2.3.4", "::ffff:0:102:304"],
      ["::1.2.3.4", "::102:304"],
      ["0::0", "::"],
    ];
    for (const [input, want] of cases) expect(formatIp(parseIp(input)!.bytes), input).toBe(want);
  });

  test("property: IPv4 round-trips and matches Node", () => {
    fc.assert(
      fc.property(v4bytes, (b) => {
        const text = formatIp(b);
        expect(text).toBe(nodeText(text, false));
        expect(Array.from(parseIp(text)!.bytes)).toEqual(Array.from(b));
      }),
    );
  });

  test("property: endpoints round-trip through text and through their 44-byte record", () => {
    fc.assert(
      fc.property(fc.oneof(v4bytes, v6bytes), fc.integer({ min: 0, max: 65535 }), fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 })), (ip, port, ifindex) => {
        const src = ifindex === null ? undefined : { ip: ip.map((x) => x ^ 0x5a), ifindex };
        const ep = Endpoint.of(ip, port, src);
        expect(ep.bytes.length).toBe(ENDPOINT_BYTES);
        expect(ep.family).toBe(ip.length === 4 ? 4 : 6);
        expect(ep.port).toBe(port);
        expect(Array.from(ep.ip)).toEqual(Array.from(ip));
        // Text: Go's AddrPort form, which Node parses to the same address.
        const back = Endpoint.parse(ep.toString())!;
        expect(back.sameAddrPort(ep)).toBe(true);
        expect(back.hasSrc).toBe(false);
        expect(nodeText(ep.address, ep.family === 6)).toBe(new SocketAddress({ address: back.address, family: ep.family === 6 ? "ipv6" : "ipv4" }).address);
        // Record: byte-exact, source included.
        const buf = new Uint8Array(3 + ENDPOINT_BYTES);
        buf.set(ep.bytes, 3);
        const rec = Endpoint.fromRecord(buf, 3)!;
        expect(rec.matchesRecord(ep.bytes, 0)).toBe(true);
        expect(rec.src).toEqual(src === undefined ? undefined : { address: formatIp(src.ip), ifindex });
        // Cookie MAC input: address bytes ‖ big-endian port.
        expect(Array.from(ep.addrPortBytes())).toEqual([...ip, port >>> 8, port & 0xff]);
      }),
      { numRuns: 2000 },
    );
  });

  test("sticky source: clearSrc forgets it in place, withoutSrc copies", () => {
    const ep = Endpoint.fromAddress("192.0.2.1", 51820, { address: "198.51.100.7", ifindex: 3 })!;
    expect(ep.src).toEqual({ address: "198.51.100.7", ifindex: 3 });
    const bare = ep.withoutSrc();
    expect(bare.src).toBeUndefined();
    expect(ep.hasSrc).toBe(true);
    expect(bare.sameAddrPort(ep)).toBe(true);
    ep.clearSrc();
    expect(ep.src).toBeUndefined();
    expect(ep.toString()).toBe("192.0.2.1:51820");
  });

  test("hostile text and records are refused, never thrown", () => {
    for (const bad of ["", ":", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "[::1]", "::1:80", "[::1:80", "host:80", "1.2.3.4:-1", "[1.2.3.4]:80", "1.2.3.4:8o"]) {
      expect(Endpoint.parse(bad), bad).toBeNull();
    }
    expect(Endpoint.fromAddress("10.0.0.1", 80, { address: "::1", ifindex: 1 })).toBeNull();
    expect(Endpoint.fromAddress("10.0.0.1", 70000)).toBeNull();
    expect(Endpoint.fromRecord(new Uint8Array(ENDPOINT_BYTES))).toBeNull();
    expect(Endpoint.fromRecord(new Uint8Array(10).fill(4))).toBeNull();
    // A local part of the other family is dropped, not trusted.
    const rec = Endpoint.of(new Uint8Array([1, 2, 3, 4]), 9).bytes.slice();
    rec[20] = 6;
    expect(Endpoint.fromRecord(rec)!.hasSrc).toBe(false);
    expect(() => Endpoint.of(new Uint8Array(5), 1)).toThrow(RangeError);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 60 }), fc.nat(60), (buf, off) => {
        const e = Endpoint.fromRecord(buf, off);
        if (e !== null) expect(isIP(e.address)).toBe(e.family);
      }),
    );
  });

  test("prefixes: masked bytes, containment by bytes", () => {
    const p = parsePrefix("100.64.0.0/10")!;
    expect(prefixContains(p, parseIp("100.127.255.255")!.bytes)).toBe(true);
    expect(prefixContains(p, parseIp("100.128.0.0")!.bytes)).toBe(false);
    expect(prefixContains(p, parseIp("::ffff:100.64.0.1")!.bytes)).toBe(false);
    const q = parsePrefix("fd7a:115c:a1e0::1/48")!;
    expect(formatPrefix(q)).toBe("fd7a:115c:a1e0::/48");
    expect(prefixContains(q, parseIp("fd7a:115c:a1e0:ffff::1")!.bytes)).toBe(true);
    expect(prefixContains(parsePrefix("::/0")!, parseIp("2001:db8::")!.bytes)).toBe(true);
  });
});
