import net from "node:net";
import dnsPacket from "dns-packet";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { TcpFramer, frameMessage } from "@lattice/dns";
import { DnsTcpServer, TcpHairpin, fromQuad100, type DnsTcpStats } from "../../src/latticed/magicdns-tcp.js";
import { tcpView } from "../../src/latticed/divert.js";
import { sum16, fold } from "../../src/latticed/checksum.js";

const S4 = [100, 64, 0, 1];
const Q4 = [100, 100, 100, 100];
const S6 = [0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const Q6 = [0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53];

function stats(): DnsTcpStats {
  return { hairpinIn: 0, hairpinOut: 0, hairpinNoListener: 0, tcpAccepted: 0, tcpRefusedSource: 0, tcpRefusedFull: 0, tcpIdleClosed: 0, tcpBadFrame: 0, tcpQueries: 0 };
}

/** A TCP segment with a correct checksum (and IPv4 header checksum). */
function segment(src: number[], dst: number[], sport: number, dport: number, payload: number[] = [], flags = 0x02): Uint8Array {
  const v4 = src.length === 4;
  const hl = v4 ? 20 : 40;
  const tl = 20 + payload.length;
  const p = new Uint8Array(hl + tl);
  const dv = new DataView(p.buffer);
  if (v4) {
    p[0] = 0x45;
    dv.setUint16(2, p.length);
    p[8] = 64;
    p[9] = 6;
    p.set(src, 12);
    p.set(dst, 16);
    dv.setUint16(10, fold(sum16(p, 0, 20, 0)));
  } else {
    p[0] = 0x60;
    dv.setUint16(4, tl);
    p[6] = 6;
    p[7] = 64;
    p.set(src, 8);
    p.set(dst, 24);
  }
  dv.setUint16(hl, sport);
  dv.setUint16(hl + 2, dport);
  dv.setUint32(hl + 4, 0x01020304);
  p[hl + 12] = 0x50;
  p[hl + 13] = flags;
  dv.setUint16(hl + 14, 65535);
  p.set(payload, hl + 20);
  dv.setUint16(hl + 16, tcpChecksum(p));
  return p;
}

/** The TCP checksum of `p` computed from scratch (field itself taken as 0). */
function tcpChecksum(p: Uint8Array): number {
  const v4 = p[0]! >> 4 === 4;
  const hl = v4 ? 20 : 40;
  const src = v4 ? p.subarray(12, 16) : p.subarray(8, 24);
  const dst = v4 ? p.subarray(16, 20) : p.subarray(24, 40);
  const seg = p.slice(hl);
  seg[16] = 0;
  seg[17] = 0;
  return fold(sum16(seg, 0, seg.length, sum16(src, 0, src.length, 0) + sum16(dst, 0, dst.length, 0) + 6 + seg.length));
}

function ipHeaderOk(p: Uint8Array): boolean {
  return p[0]! >> 4 !== 4 || fold(sum16(p, 0, 20, 0)) === 0;
}

describe("TCP hairpin rewrite (quad-100:53 ⇄ the kernel listener)", () => {
  for (const [fam, S, Q] of [["IPv4", S4, Q4], ["IPv6", S6, Q6]] as const) {
    it(`${fam}: client → quad-100:53 becomes quad-100:P → S:Q, and the listener's reply becomes quad-100:53 → S:P, checksums valid`, () => {
      const h = new TcpHairpin(stats());
      h.port = 40123;
      const c = segment([...S], [...Q], 51000, 53, [1, 2, 3]);
      expect(h.outbound(c)).toBe("deliver");
      const t = tcpView(c)!;
      expect([...t.src]).toEqual([...Q]);
      expect([...t.dst]).toEqual([...S]);
      expect([t.sport, t.dport]).toEqual([51000, 40123]);
      expect((c[t.tcp + 16]! << 8) | c[t.tcp + 17]!).toBe(tcpChecksum(c));
      expect(ipHeaderOk(c)).toBe(true);

      const r = segment([...S], [...Q], 40123, 51000, [9, 9], 0x12);
      expect(h.outbound(r)).toBe("deliver");
      const u = tcpView(r)!;
      expect([...u.src]).toEqual([...Q]);
      expect([...u.dst]).toEqual([...S]);
      expect([u.sport, u.dport]).toEqual([53, 51000]);
      expect((r[u.tcp + 16]! << 8) | r[u.tcp + 17]!).toBe(tcpChecksum(r));
      expect(ipHeaderOk(r)).toBe(true);
    });
  }

  it("a client whose source port is 53 is still told apart from the listener (port Q decides)", () => {
    const h = new TcpHairpin(stats());
    h.port = 40123;
    const c = segment(S4, Q4, 53, 53);
    expect(h.outbound(c)).toBe("deliver");
    expect(tcpView(c)!.dport).toBe(40123);
  });

  it("other TCP passes untouched; without a listener quad-100:53 is dropped", () => {
    const st = stats();
    const h = new TcpHairpin(st);
    h.port = 40123;
    const other = segment(S4, [100, 64, 0, 2], 51000, 53);
    const before = other.slice();
    expect(h.outbound(other)).toBe("pass");
    expect(other).toEqual(before);
    expect(h.outbound(segment(S4, Q4, 51000, 80))).toBe("pass");
    h.port = 0;
    expect(h.outbound(segment(S4, Q4, 51000, 53))).toBe("drop");
    expect(st.hairpinNoListener).toBe(1);
  });

  it("fuzz: random segments to quad-100 keep a valid TCP checksum after the rewrite", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.integer({ min: 1, max: 65535 }), fc.constantFrom(53, 40123), fc.uint8Array({ maxLength: 64 }), (v6, sport, dport, payload) => {
        const h = new TcpHairpin(stats());
        h.port = 40123;
        const p = v6 ? segment(S6, Q6, sport, dport, [...payload]) : segment(S4, Q4, sport, dport, [...payload]);
        if (h.outbound(p) === "deliver") {
          const t = tcpView(p)!;
          expect((p[t.tcp + 16]! << 8) | p[t.tcp + 17]!).toBe(tcpChecksum(p));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("fromQuad100 recognises packets whose source is a quad-100 address", () => {
    expect(fromQuad100(segment(Q4, S4, 53, 1))).toBe(true);
    expect(fromQuad100(segment(Q6, S6, 53, 1))).toBe(true);
    expect(fromQuad100(segment(S4, Q4, 1, 53))).toBe(false);
    expect(fromQuad100(new Uint8Array([0x45]))).toBe(false);
  });
});

const servers: DnsTcpServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

function query(id: number, name = "beta"): Uint8Array {
  return dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name }] });
}

/** Connects to the server on loopback and collects framed replies. */
function client(port: number): Promise<{ sock: net.Socket; replies: Uint8Array[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    const replies: Uint8Array[] = [];
    const f = new TcpFramer(65535);
    sock.on("data", (c: Buffer) => replies.push(...f.push(new Uint8Array(c)).messages));
    sock.on("error", () => {});
    const closed = new Promise<void>((r) => sock.on("close", () => r()));
    sock.once("connect", () => resolve({ sock, replies, closed }));
    sock.once("error", reject);
  });
}

async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("MagicDNS TCP listener (hostile clients)", () => {
  const echo = async (q: Uint8Array) => {
    const r = q.slice();
    r[2]! |= 0x80;
    return r;
  };

  it("refuses connections that are not from quad-100 (loopback here): closed at once, counted", async () => {
    const st = stats();
    const s = await DnsTcpServer.listen({ answer: echo, stats: st });
    servers.push(s);
    const c = await client(s.port);
    c.sock.write(frameMessage(query(1)));
    await c.closed;
    expect(c.replies).toHaveLength(0);
    expect(st.tcpRefusedSource).toBe(1);
    expect(st.tcpQueries).toBe(0);
  });

  it("answers several length-prefixed queries on one connection, sent in one write or byte by byte", async () => {
    const st = stats();
    const s = await DnsTcpServer.listen({ answer: echo, stats: st, acceptFrom: () => true });
    servers.push(s);
    const c = await client(s.port);
    c.sock.write(Buffer.concat([frameMessage(query(1)), frameMessage(query(2)), frameMessage(query(3))]));
    const bytes = frameMessage(query(4));
    for (const b of bytes) c.sock.write(new Uint8Array([b]));
    await until(() => c.replies.length === 4);
    expect(c.replies.map((r) => (r[0]! << 8) | r[1]!).sort()).toEqual([1, 2, 3, 4]);
    c.sock.end();
    await c.closed;
  });

  it("an oversized length prefix closes the connection (counted); a zero length too", async () => {
    const st = stats();
    const s = await DnsTcpServer.listen({ answer: echo, stats: st, acceptFrom: () => true });
    servers.push(s);
    for (const prefix of [[0xff, 0xff], [0, 0]]) {
      const c = await client(s.port);
      c.sock.write(new Uint8Array(prefix));
      await c.closed;
    }
    expect(st.tcpBadFrame).toBe(2);
  });

  it("idle connections are closed after the timeout; connections over the limit at accept", async () => {
    const st = stats();
    const s = await DnsTcpServer.listen({ answer: echo, stats: st, acceptFrom: () => true, idleMs: 200, maxConns: 2 });
    servers.push(s);
    const a = await client(s.port);
    const b = await client(s.port);
    await until(() => s.connections === 2);
    const c = await client(s.port);
    await c.closed;
    expect(st.tcpRefusedFull).toBe(1);
    await Promise.all([a.closed, b.closed]);
    expect(st.tcpIdleClosed).toBe(2);
  });

  it("a flood of pipelined queries on many connections: every one answered, in-flight bounded", async () => {
    const st = stats();
    let inflight = 0;
    let peak = 0;
    const slow = async (q: Uint8Array) => {
      inflight++;
      peak = Math.max(peak, inflight);
      await new Promise((r) => setTimeout(r, 1));
      inflight--;
      return echo(q);
    };
    const s = await DnsTcpServer.listen({ answer: slow, stats: st, acceptFrom: () => true, maxInflight: 4 });
    servers.push(s);
    const cs = await Promise.all(Array.from({ length: 8 }, () => client(s.port)));
    for (const c of cs) c.sock.write(Buffer.concat(Array.from({ length: 200 }, (_, i) => frameMessage(query(i)))));
    await until(() => cs.every((c) => c.replies.length === 200), 10_000);
    expect(peak).toBeLessThanOrEqual(8 * 4);
    expect(st.tcpQueries).toBe(1600);
  });
});

describe("MagicDNS TCP listener: a client that never reads", () => {
  it("stops being read once its replies pile up (bounded buffer), then the idle timeout closes it", async () => {
    const st = stats();
    let answered = 0;
    const big = async (q: Uint8Array) => {
      answered++;
      const r = new Uint8Array(8000);
      r.set(q.subarray(0, 2));
      return r;
    };
    const s = await DnsTcpServer.listen({ answer: big, stats: st, acceptFrom: () => true, idleMs: 500 });
    servers.push(s);
    const sock = net.connect({ host: "127.0.0.1", port: s.port });
    sock.on("error", () => {});
    await new Promise<void>((r) => sock.once("connect", () => r()));
    sock.pause(); // never read
    const burst = Buffer.concat(Array.from({ length: 20_000 }, (_, i) => frameMessage(query(i & 0xffff))));
    sock.write(burst);
    await until(() => st.tcpIdleClosed === 1, 20_000);
    sock.destroy();
    // 20 000 × 8 KB = 160 MB of replies were asked for; only what fits the kernel's socket
    // buffers (loopback autotuning: up to tcp_rmem's 32 MiB + tcp_wmem's 4 MiB) plus our
    // 64 KiB was produced — about 2 700 here; without the bound all 20 000 were buffered.
    expect(answered).toBeLessThan(8000);
    await until(() => s.connections === 0); // the server socket's close event follows destroy()
  });
});
