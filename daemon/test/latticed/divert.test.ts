// The port-22 diversion's packet rewrite: ports and TCP checksums after the incremental
// update (RFC 1624) must equal a from-scratch checksum over the pseudo-header, for IPv4
// and IPv6, and the diversion must touch only TCP :22 to our own addresses.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseIp } from "@lattice/netaddr";
import { checksumUpdate, FLOW_TTL_MS, SshDivert, tcpView } from "../../src/latticed/divert.js";

/** One's-complement sum of 16-bit words (reference, not incremental). */
function sum16(parts: Uint8Array[]): number {
  let s = 0;
  for (const b of parts) {
    for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (b[i + 1] ?? 0);
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The TCP checksum computed from scratch over the pseudo-header and the segment. */
function referenceTcpChecksum(p: Uint8Array): number {
  const v6 = p[0]! >> 4 === 6;
  const tcpOff = v6 ? 40 : (p[0]! & 0x0f) * 4;
  const seg = new Uint8Array(p.subarray(tcpOff));
  seg[16] = 0;
  seg[17] = 0;
  const len = seg.length;
  const pseudo = v6
    ? Buffer.concat([p.subarray(8, 40), Buffer.from([len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, 0, 0, 0, 6])])
    : Buffer.concat([p.subarray(12, 20), Buffer.from([0, 6, len >> 8, len & 0xff])]);
  return ~sum16([pseudo, seg]) & 0xffff;
}

function storedChecksum(p: Uint8Array): number {
  const off = p[0]! >> 4 === 6 ? 40 : (p[0]! & 0x0f) * 4;
  return (p[off + 16]! << 8) | p[off + 17]!;
}

/** A TCP packet (valid checksum) from src:sport to dst:dport with `payload` bytes. */
function tcpPacket(src: string, dst: string, sport: number, dport: number, payload: number, flags = 0x18, fragOffset = 0): Uint8Array {
  const s = parseIp(src)!.bytes;
  const d = parseIp(dst)!.bytes;
  const v6 = s.length === 16;
  const ipLen = v6 ? 40 : 20;
  const p = new Uint8Array(ipLen + 20 + payload);
  if (v6) {
    p[0] = 0x60;
    p[4] = (20 + payload) >> 8;
    p[5] = (20 + payload) & 0xff;
    p[6] = 6;
    p[7] = 64;
    p.set(s, 8);
    p.set(d, 24);
  } else {
    p[0] = 0x45;
    p[2] = p.length >> 8;
    p[3] = p.length & 0xff;
    p[6] = 0x40 | ((fragOffset >> 8) & 0x1f);
    p[7] = fragOffset & 0xff;
    p[8] = 64;
    p[9] = 6;
    p.set(s, 12);
    p.set(d, 16);
  }
  const t = ipLen;
  p[t] = sport >> 8;
  p[t + 1] = sport & 0xff;
  p[t + 2] = dport >> 8;
  p[t + 3] = dport & 0xff;
  p.set(randomBytes(8), t + 4);
  p[t + 12] = 0x50;
  p[t + 13] = flags;
  p[t + 14] = 0xff;
  p.set(randomBytes(payload), t + 20);
  const cs = referenceTcpChecksum(p);
  p[t + 16] = cs >> 8;
  p[t + 17] = cs & 0xff;
  return p;
}

const ME4 = "100.64.0.2";
const ME6 = "fd7a:115c:a1e0::2";
const PEER4 = "100.64.0.9";
const PEER6 = "fd7a:115c:a1e0::9";
const P = 23456;

function divert(now = () => 0): SshDivert {
  const d = new SshDivert(now);
  d.configure([`${ME4}/32`, `${ME6}/128`], P);
  return d;
}

describe("SshDivert packet rewrite", () => {
  it("rewrites dport 22 → P (in) and sport P → 22 (out) with checksums equal to a from-scratch computation, IPv4 and IPv6, many sizes", () => {
    const d = divert();
    for (const [peer, me] of [[PEER4, ME4], [PEER6, ME6]] as const) {
      for (let i = 0; i < 300; i++) {
        const sport = 1024 + Math.floor(Math.random() * 60000);
        const size = Math.floor(Math.random() * 1200);
        const inb = tcpPacket(peer, me, sport, 22, size);
        expect(d.inbound(inb)).toBe(true);
        const t = tcpView(inb)!;
        expect(t.dport).toBe(P);
        expect(t.sport).toBe(sport);
        expect(storedChecksum(inb)).toBe(referenceTcpChecksum(inb));
        const out = tcpPacket(me, peer, P, sport, size);
        d.outbound(out);
        expect(tcpView(out)!.sport).toBe(22);
        expect(storedChecksum(out)).toBe(referenceTcpChecksum(out));
      }
    }
    expect(d.stats.divertedIn).toBe(600);
    expect(d.stats.divertedOut).toBe(600);
  });

  it("RFC 1624 update matches the reference on edge values (checksum 0x0000/0xffff, ports 0/65535)", () => {
    for (const [sum, m, m2] of [
      [0x0000, 22, 65535],
      [0xffff, 65535, 0],
      [0x1234, 0, 22],
      [0xdd2f, 0x5555, 0xaaaa], // RFC 1624 §4's example words
    ] as const) {
      // A pseudo "packet" of two words [w, x] with checksum sum: recompute after w → m2.
      const x = (~sum - m) & 0xffff;
      const before = ~sum16([Uint8Array.of(m >> 8, m & 0xff, x >> 8, x & 0xff)]) & 0xffff;
      const after = ~sum16([Uint8Array.of(m2 >> 8, m2 & 0xff, x >> 8, x & 0xff)]) & 0xffff;
      const inc = checksumUpdate(before, m, m2);
      // One's complement has two zeros: 0x0000 and 0xffff are the same value.
      expect(inc === after || (inc ^ after) === 0xffff).toBe(true);
    }
  });

  it("leaves alone: other ports, other destinations, UDP, non-first fragments, and everything when off", () => {
    const d = divert();
    const other = tcpPacket(PEER4, ME4, 4000, 80, 10);
    const copy = other.slice();
    expect(d.inbound(other)).toBe(true);
    expect(other).toEqual(copy);
    const notMe = tcpPacket(PEER4, "100.64.0.3", 4000, 22, 10);
    const c2 = notMe.slice();
    expect(d.inbound(notMe)).toBe(true);
    expect(notMe).toEqual(c2);
    const udp = tcpPacket(PEER4, ME4, 4000, 22, 10);
    udp[9] = 17;
    const c3 = udp.slice();
    d.inbound(udp);
    expect(udp).toEqual(c3);
    const frag = tcpPacket(PEER4, ME4, 4000, 22, 10, 0x18, 100);
    const c4 = frag.slice();
    d.inbound(frag);
    expect(frag).toEqual(c4);
    // The host's own traffic from port P to someone else's address is not ours to touch.
    const hostOut = tcpPacket("100.64.0.3", PEER4, P, 4000, 10);
    const c5 = hostOut.slice();
    d.outbound(hostOut);
    expect(hostOut).toEqual(c5);
    d.configure([ME4], 0);
    const off = tcpPacket(PEER4, ME4, 4000, 22, 10);
    const c6 = off.slice();
    expect(d.inbound(off)).toBe(true);
    expect(off).toEqual(c6);
    expect(() => d.configure([ME4], 22)).toThrow(RangeError);
  });

  it("drops peers' packets straight to the internal port P (counted)", () => {
    const d = divert();
    expect(d.inbound(tcpPacket(PEER4, ME4, 4000, P, 0, 0x02))).toBe(false);
    expect(d.inbound(tcpPacket(PEER6, ME6, 4000, P, 0, 0x02))).toBe(false);
    expect(d.stats.droppedDirect).toBe(2);
  });

  it("an accepted connection is admitted only after a diverted SYN from that source (once, within the TTL)", () => {
    let now = 1_000;
    const d = divert(() => now);
    expect(d.takeFlow(PEER4, 5000)).toBe(false); // no SYN seen: a local process on :P
    d.inbound(tcpPacket(PEER4, ME4, 5000, 22, 0, 0x18)); // not a SYN: not recorded
    expect(d.takeFlow(PEER4, 5000)).toBe(false);
    d.inbound(tcpPacket(PEER4, ME4, 5000, 22, 0, 0x02));
    expect(d.takeFlow(PEER4, 5001)).toBe(false);
    expect(d.takeFlow(`::ffff:${PEER4}`, 5000)).toBe(true);
    expect(d.takeFlow(PEER4, 5000)).toBe(false); // consumed
    d.inbound(tcpPacket(PEER6, ME6, 6000, 22, 0, 0x02));
    now += FLOW_TTL_MS + 1;
    expect(d.takeFlow(PEER6, 6000)).toBe(false); // expired
    expect(d.stats.refusedUndiverted).toBe(5);
  });
});
