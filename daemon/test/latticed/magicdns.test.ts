import dgram from "node:dgram";
import net from "node:net";
import { TcpFramer, frameMessage } from "@lattice/dns";
import dnsPacket from "dns-packet";
import type { DecodedPacket, Question } from "dns-packet";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { DgramUpstream, MagicDnsEdge, QUAD100_V4, QUAD100_V6, parseResolvConf, parseResolverAddr, type ResolverAddr, type Upstream } from "../../src/latticed/magicdns.js";
import { Netmap } from "../../src/latticed/netmap.js";
import { buildUdp, parseUdp } from "../../src/latticed/udp-packet.js";
import type { MapResponse, Node } from "@lattice/types";

const CLIENT_V4 = new Uint8Array([100, 64, 0, 1]);
const CLIENT_V6 = new Uint8Array([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

function node(id: number, name: string, v4: string, v6: string): Node {
  return { ID: id, StableID: `n${id}`, Name: name, User: 1, Key: `nodekey:${id.toString(16).padStart(64, "0")}`, Addresses: [`${v4}/32`, `${v6}/128`], AllowedIPs: [] } as Node;
}

function netmap(betaName = "beta.tail.example."): Netmap {
  const resp = {
    Node: node(1, "alpha.tail.example.", "100.64.0.1", "fd7a:115c:a1e0::1"),
    Peers: [node(2, betaName, "100.64.0.2", "fd7a:115c:a1e0::2")],
    Domain: "tail.example",
    DNSConfig: { Proxied: true },
  } as unknown as MapResponse;
  return Netmap.fromFull(resp, 0)!;
}

/** A UDP checksum over the pseudo-header + datagram that must fold to 0xffff. */
function udpChecksumOk(p: Uint8Array): boolean {
  const v4 = p[0]! >> 4 === 4;
  const hl = v4 ? 20 : 40;
  const src = v4 ? p.subarray(12, 16) : p.subarray(8, 24);
  const dst = v4 ? p.subarray(16, 20) : p.subarray(24, 40);
  const ulen = (p[hl + 4]! << 8) | p[hl + 5]!;
  let acc = 17 + ulen;
  const add = (b: Uint8Array) => {
    for (let i = 0; i < b.length; i += 2) acc += (b[i]! << 8) | (b[i + 1] ?? 0);
  };
  add(src);
  add(dst);
  add(p.subarray(hl, hl + ulen));
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  if (!v4) return acc === 0xffff;
  let h = 0;
  for (let i = 0; i < 20; i += 2) h += (p[i]! << 8) | p[i + 1]!;
  while (h > 0xffff) h = (h & 0xffff) + (h >>> 16);
  return acc === 0xffff && h === 0xffff;
}

function queryPacket(q: Question, v6 = false, id = 0x4242): Uint8Array {
  const msg = dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [q] });
  return v6 ? buildUdp(CLIENT_V6, QUAD100_V6, 40000, 53, msg) : buildUdp(CLIENT_V4, QUAD100_V4, 40000, 53, msg);
}

function edge(upstream: Upstream | null = null, maxPending?: number): { e: MagicDnsEdge; out: Uint8Array[] } {
  const out: Uint8Array[] = [];
  const e = new MagicDnsEdge({ deliver: (p) => out.push(p), upstream, ...(maxPending !== undefined ? { maxPending } : {}), timeoutMs: 200 });
  e.setNetmap(netmap());
  return { e, out };
}

function replyOf(p: Uint8Array): { msg: DecodedPacket & { rcode: string }; u: NonNullable<ReturnType<typeof parseUdp>> } {
  const u = parseUdp(p)!;
  expect(u).not.toBeNull();
  return { msg: dnsPacket.decode(Buffer.from(u.payload)) as DecodedPacket & { rcode: string }, u };
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe("MagicDNS on the TUN", () => {
  it("answers an A query to 100.100.100.100:53 with a checksummed IPv4/UDP reply to the querier", () => {
    const { e, out } = edge();
    expect(e.intercept(queryPacket({ type: "A", name: "beta" }))).toBe(true);
    expect(out).toHaveLength(1);
    const { msg, u } = replyOf(out[0]!);
    expect([...u.src]).toEqual([...QUAD100_V4]);
    expect([...u.dst]).toEqual([...CLIENT_V4]);
    expect(u.srcPort).toBe(53);
    expect(u.dstPort).toBe(40000);
    expect(udpChecksumOk(out[0]!)).toBe(true);
    expect(msg.id).toBe(0x4242);
    expect(msg.answers?.map((a) => a.data)).toEqual(["100.64.0.2"]);
  });

  it("answers over IPv6 at fd7a:115c:a1e0::53 with a valid UDP checksum", () => {
    const { e, out } = edge();
    expect(e.intercept(queryPacket({ type: "AAAA", name: "beta.tail.example" }, true))).toBe(true);
    const { msg, u } = replyOf(out[0]!);
    expect([...u.src]).toEqual([...QUAD100_V6]);
    expect(udpChecksumOk(out[0]!)).toBe(true);
    expect(msg.answers?.map((a) => a.data)).toEqual(["fd7a:115c:a1e0::2"]);
  });

  it("a new netmap (rename) changes the answer at once", () => {
    const { e, out } = edge();
    e.setNetmap(netmap("bravo.tail.example."));
    e.intercept(queryPacket({ type: "A", name: "beta.tail.example" }));
    e.intercept(queryPacket({ type: "A", name: "bravo" }));
    expect(replyOf(out[0]!).msg.rcode).toBe("NXDOMAIN");
    expect(replyOf(out[1]!).msg.answers?.[0]?.data).toBe("100.64.0.2");
  });

  it("MagicDNS off (Proxied false): tailnet names are forwarded, not answered", async () => {
    const seen: Uint8Array[] = [];
    const { e, out } = edge({ query: async (m) => (seen.push(m), null) });
    const resp = { Node: node(1, "alpha.tail.example.", "100.64.0.1", "fd7a:115c:a1e0::1"), Domain: "tail.example", DNSConfig: { Proxied: false } } as unknown as MapResponse;
    e.setNetmap(Netmap.fromFull(resp, 0)!);
    e.intercept(queryPacket({ type: "A", name: "alpha.tail.example" }));
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toHaveLength(1);
    expect(replyOf(out[0]!).msg.rcode).toBe("SERVFAIL");
  });

  it("leaves other packets alone: other destinations, other ports, neither UDP nor TCP", () => {
    const { e, out } = edge();
    const msg = dnsPacket.encode({ type: "query", id: 1, questions: [{ type: "A", name: "beta" }] });
    expect(e.intercept(buildUdp(CLIENT_V4, new Uint8Array([100, 64, 0, 2]), 1, 53, msg))).toBe(false);
    expect(e.intercept(buildUdp(CLIENT_V4, QUAD100_V4, 1, 5353, msg))).toBe(false);
    const icmp = queryPacket({ type: "A", name: "beta" });
    icmp[9] = 1;
    expect(e.intercept(icmp)).toBe(false);
    expect(out).toHaveLength(0);
  });

  it("TCP to quad-100:53 before the TCP listener runs: consumed and counted, nothing delivered", () => {
    const { e, out } = edge();
    const tcp = queryPacket({ type: "A", name: "beta" });
    tcp[9] = 6;
    expect(e.intercept(tcp)).toBe(true);
    expect(out).toHaveLength(0);
    expect(e.stats.hairpinNoListener).toBe(1);
  });

  it("forwards other names through the upstream and wraps the reply back to the querier", async () => {
    const srv = dgram.createSocket("udp4");
    closers.push(() => srv.close());
    srv.on("message", (m, rinfo) => {
      const q = dnsPacket.decode(m);
      srv.send(dnsPacket.encode({ type: "response", id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: "A", name: "example.com", ttl: 5, data: "192.0.2.7" }] }), rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => srv.bind(0, "127.0.0.1", r));
    const { e, out } = edge(new DgramUpstream(["127.0.0.1"], srv.address().port));
    expect(e.intercept(queryPacket({ type: "A", name: "example.com" }))).toBe(true);
    await expect.poll(() => out.length).toBe(1);
    const { msg } = replyOf(out[0]!);
    expect(msg.id).toBe(0x4242);
    expect(msg.answers?.[0]?.data).toBe("192.0.2.7");
    expect(e.stats.forwarded).toBe(1);
    expect(e.pending).toBe(0);
  });

  it("an upstream UDP reply with TC is asked again over TCP: a TCP client gets all 80 records, a UDP client a fitted reply", async () => {
    const records = Array.from({ length: 80 }, (_, i) => ({ type: "A" as const, name: "big.example.com", ttl: 5, data: `192.0.2.${i + 1}` }));
    const srv = dgram.createSocket("udp4");
    closers.push(() => srv.close());
    srv.on("message", (m, rinfo) => {
      const q = dnsPacket.decode(m);
      srv.send(dnsPacket.encode({ type: "response", id: q.id, flags: dnsPacket.TRUNCATED_RESPONSE, questions: q.questions }), rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => srv.bind(0, "127.0.0.1", r));
    const port = srv.address().port;
    let tcpQueries = 0;
    const tsrv = net.createServer((c) => {
      const f = new TcpFramer(65535);
      c.on("data", (d: Buffer) => {
        for (const m of f.push(new Uint8Array(d)).messages) {
          tcpQueries++;
          const q = dnsPacket.decode(Buffer.from(m));
          c.write(frameMessage(dnsPacket.encode({ type: "response", id: q.id, questions: q.questions, answers: records })));
        }
      });
    });
    closers.push(() => tsrv.close());
    await new Promise<void>((r) => tsrv.listen(port, "127.0.0.1", r));
    const { e } = edge(new DgramUpstream(["127.0.0.1"], port));
    const q = dnsPacket.encode({ type: "query", id: 77, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name: "big.example.com" }] });
    const viaTcp = await e.answer(q, "tcp");
    const full = dnsPacket.decode(Buffer.from(viaTcp!));
    expect(full.answers).toHaveLength(80);
    expect(full.flag_tc).toBe(false);
    const viaUdp = await e.answer(q, "udp");
    expect(viaUdp!.length).toBeLessThanOrEqual(1232);
    expect(dnsPacket.decode(Buffer.from(viaUdp!)).flag_tc).toBe(true);
    expect(tcpQueries).toBe(2);
  });

  it("hostile upstream: replies with a wrong ID are ignored; silence → SERVFAIL after the timeout", async () => {
    const srv = dgram.createSocket("udp4");
    closers.push(() => srv.close());
    srv.on("message", (m, rinfo) => {
      const q = dnsPacket.decode(m);
      srv.send(dnsPacket.encode({ type: "response", id: (q.id! + 1) & 0xffff, questions: q.questions, answers: [{ type: "A", name: "example.com", data: "203.0.113.66" }] }), rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => srv.bind(0, "127.0.0.1", r));
    const { e, out } = edge(new DgramUpstream(["127.0.0.1"], srv.address().port));
    e.intercept(queryPacket({ type: "A", name: "example.com" }));
    await expect.poll(() => out.length, { timeout: 2_000 }).toBe(1);
    expect(replyOf(out[0]!).msg.rcode).toBe("SERVFAIL");
    expect(e.stats.forwardFailed).toBe(1);
  });

  it("bounds forwards in flight: over the limit queries are dropped and counted", () => {
    const never: Upstream = { query: () => new Promise(() => {}) };
    const { e, out } = edge(never, 4);
    for (let i = 0; i < 10; i++) expect(e.intercept(queryPacket({ type: "A", name: "example.com" }, false, i))).toBe(true);
    expect(e.pending).toBe(4);
    expect(e.stats.droppedPendingFull).toBe(6);
    expect(out).toHaveLength(0);
  });

  it("no upstream: SERVFAIL at once", () => {
    const { e, out } = edge(null);
    e.intercept(queryPacket({ type: "A", name: "example.com" }));
    expect(replyOf(out[0]!).msg.rcode).toBe("SERVFAIL");
  });

  it("fuzz: random payloads and mangled IP headers to quad-100 never throw", () => {
    const { e } = edge();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.nat(60), fc.integer({ min: 0, max: 255 }), (payload, v6, at, v) => {
        const p = v6 ? buildUdp(CLIENT_V6, QUAD100_V6, 1234, 53, payload) : buildUdp(CLIENT_V4, QUAD100_V4, 1234, 53, payload);
        if (at !== 16 && at !== 17 && at !== 18 && at !== 19) p[at % p.length] = v;
        e.intercept(p);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("split DNS and admin resolvers", () => {
  function withDns(dns: object): Netmap {
    const resp = { Node: node(1, "alpha.tail.example.", "100.64.0.1", "fd7a:115c:a1e0::1"), Domain: "tail.example", DNSConfig: { Proxied: true, ...dns } } as unknown as MapResponse;
    return Netmap.fromFull(resp, 0)!;
  }
  /** An edge whose upstreams record which server set got each query. */
  function recording(dns: object): { e: MagicDnsEdge; asked: string[] } {
    const asked: string[] = [];
    const tag = (servers: readonly ResolverAddr[]): Upstream => ({ query: async () => (asked.push(servers.map((s) => `${s.host}:${s.port}`).join(",")), null) });
    const e = new MagicDnsEdge({ deliver: () => {}, upstream: { query: async () => (asked.push("os"), null) }, upstreamFor: tag });
    e.setNetmap(withDns(dns));
    return { e, asked };
  }

  it("a name under a route goes to that route's resolvers (most specific wins); others to the OS upstream", async () => {
    const { e, asked } = recording({ Routes: { "corp.example": [{ Addr: "100.64.0.9" }], "eng.corp.example.": [{ Addr: "[fd7a:115c:a1e0::9]:5353" }], "doh.example": [{ Addr: "https://dns.example/dns-query" }] } });
    for (const n of ["db.corp.example", "CORP.example", "x.eng.corp.example", "example.com", "notcorp.example", "a.doh.example"]) e.intercept(queryPacket({ type: "A", name: n }));
    await new Promise((r) => setTimeout(r, 10));
    expect(asked).toEqual(["100.64.0.9:53", "100.64.0.9:53", "fd7a:115c:a1e0::9:5353", "os", "os", "os"]);
  });

  it("a route without resolvers is a MagicDNS suffix: unknown names NXDOMAIN with its SOA, unless a route with resolvers is more specific", async () => {
    const asked: string[] = [];
    const out: Uint8Array[] = [];
    const e = new MagicDnsEdge({ deliver: (p) => out.push(p), upstream: { query: async () => (asked.push("os"), null) }, upstreamFor: (srv) => ({ query: async () => (asked.push(srv[0]!.host), null) }) });
    e.setNetmap(withDns({ Routes: { "lab.example": [], "vpn.lab.example": [{ Addr: "100.64.0.9" }] } }));
    e.intercept(queryPacket({ type: "A", name: "db.lab.example" }));
    const nx = replyOf(out[0]!).msg;
    expect(nx.rcode).toBe("NXDOMAIN");
    expect(nx.authorities?.[0]).toMatchObject({ type: "SOA", name: "lab.example" });
    e.intercept(queryPacket({ type: "A", name: "x.vpn.lab.example" }));
    await new Promise((r) => setTimeout(r, 10));
    expect(asked).toEqual(["100.64.0.9"]);
  });

  it("DNSConfig.Resolvers replace the OS upstream; tailnet names still answered locally", async () => {
    const { e, asked } = recording({ Resolvers: [{ Addr: "192.0.2.1:5300" }, { Addr: "https://dns.example/dns-query" }] });
    e.intercept(queryPacket({ type: "A", name: "example.com" }));
    e.intercept(queryPacket({ type: "A", name: "alpha" }));
    await new Promise((r) => setTimeout(r, 10));
    expect(asked).toEqual(["192.0.2.1:5300"]);
  });

  it("FallbackResolvers are used only when the host has no nameservers and the admin set no Resolvers", async () => {
    const asked: string[] = [];
    const tag = (servers: readonly ResolverAddr[]): Upstream => ({ query: async () => (asked.push(servers.map((s) => s.host).join(",")), null) });
    const bare = new MagicDnsEdge({ deliver: () => {}, upstream: null, upstreamFor: tag });
    bare.setNetmap(withDns({ FallbackResolvers: [{ Addr: "9.9.9.9" }] }));
    bare.intercept(queryPacket({ type: "A", name: "example.com" }));
    const withHost = new MagicDnsEdge({ deliver: () => {}, upstream: { query: async () => (asked.push("os"), null) }, upstreamFor: tag });
    withHost.setNetmap(withDns({ FallbackResolvers: [{ Addr: "9.9.9.9" }] }));
    withHost.intercept(queryPacket({ type: "A", name: "example.com" }));
    await new Promise((r) => setTimeout(r, 10));
    expect(asked).toEqual(["9.9.9.9", "os"]);
  });

  it("admin resolvers and split-DNS routes naming MagicDNS itself (100.100.100.100, ::ffff:100.100.100.100, fd7a:115c:a1e0::53) are skipped, so quad-100 never forwards to itself", async () => {
    const { e, asked } = recording({
      Resolvers: [{ Addr: "100.100.100.100" }, { Addr: "192.0.2.1" }],
      Routes: { "loop.example": [{ Addr: "[fd7a:115c:a1e0::53]:53" }, { Addr: "::ffff:100.100.100.100" }], "mixed.example": [{ Addr: "100.100.100.100:53" }, { Addr: "100.64.0.9" }] },
    });
    for (const n of ["example.com", "a.loop.example", "a.mixed.example"]) e.intercept(queryPacket({ type: "A", name: n }));
    await new Promise((r) => setTimeout(r, 10));
    // loop.example has no usable resolver left: forwarded as if the route were absent.
    expect(asked).toEqual(["192.0.2.1:53", "192.0.2.1:53", "100.64.0.9:53"]);
    const only = recording({ Resolvers: [{ Addr: "100.100.100.100" }] });
    only.e.intercept(queryPacket({ type: "A", name: "example.com" }));
    await new Promise((r) => setTimeout(r, 10));
    expect(only.asked).toEqual(["os"]);
    expect(parseResolvConf("nameserver 100.100.100.100\nnameserver ::ffff:100.100.100.100\nnameserver fd7a:115c:a1e0::53\nnameserver 10.0.0.1\n")).toEqual(["10.0.0.1"]);
  });

  it("parses resolver addresses; DoH/DoT and names are refused", () => {
    expect(parseResolverAddr("1.1.1.1")).toEqual({ host: "1.1.1.1", port: 53 });
    expect(parseResolverAddr("1.1.1.1:5353")).toEqual({ host: "1.1.1.1", port: 5353 });
    expect(parseResolverAddr("[2001:db8::1]:53")).toEqual({ host: "2001:db8::1", port: 53 });
    expect(parseResolverAddr("2001:db8::1")).toEqual({ host: "2001:db8::1", port: 53 });
    for (const bad of ["https://dns.google/dns-query", "tls://1.1.1.1", "dns.example", "1.1.1.1:0", "1.1.1.1:99999", ""]) expect(parseResolverAddr(bad)).toBeNull();
  });
});

describe("resolv.conf", () => {
  it("takes nameserver lines in order, skipping MagicDNS itself and junk", () => {
    const text = "# generated\nsearch x\nnameserver 10.0.0.2\nnameserver 100.100.100.100\nnameserver fd7a:115c:a1e0::53\nnameserver nope\n  nameserver 2001:db8::1\n";
    expect(parseResolvConf(text)).toEqual(["10.0.0.2", "2001:db8::1"]);
  });
});
