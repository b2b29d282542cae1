/** Test helper: builds real IPv4/IPv6 packets from a small description. */
import { parseIp } from "@lattice/netaddr";

export interface PacketSpec {
  v?: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** TCP flags; default SYN. */
  flags?: number;
  icmpType?: number;
  icmpCode?: number;
}

export const TCP = 6, UDP = 17, ICMP4 = 1, ICMP6 = 58, SCTP = 132, TSMP = 99;
export const SYN = 0x02, ACK = 0x10;

function ip(s: string): Uint8Array {
  const p = parseIp(s);
  if (p === null) throw new Error(`bad ip ${s}`);
  return p.bytes;
}

function transport(s: PacketSpec, v6: boolean): Uint8Array {
  const icmp = s.proto === (v6 ? ICMP6 : ICMP4);
  const len = s.proto === TCP ? 20 : s.proto === SCTP ? 12 : 8;
  const t = new Uint8Array(len);
  if (icmp) {
    t[0] = s.icmpType ?? (v6 ? 128 : 8);
    t[1] = s.icmpCode ?? 0;
    return t;
  }
  if (s.proto === TCP || s.proto === UDP || s.proto === SCTP) {
    t[0] = (s.sport ?? 0) >> 8; t[1] = (s.sport ?? 0) & 0xff;
    t[2] = (s.dport ?? 0) >> 8; t[3] = (s.dport ?? 0) & 0xff;
  }
  if (s.proto === TCP) { t[12] = 0x50; t[13] = s.flags ?? SYN; }
  if (s.proto === UDP) { t[4] = 0; t[5] = 8; }
  return t;
}

/** A whole IP packet for `s` (family from the source address). */
export function build(s: PacketSpec): Uint8Array {
  const src = ip(s.src);
  const dst = ip(s.dst);
  const v6 = src.length === 16;
  const t = transport(s, v6);
  if (!v6) {
    const b = new Uint8Array(20 + t.length);
    b[0] = 0x45; b[2] = b.length >> 8; b[3] = b.length & 0xff; b[8] = 64; b[9] = s.proto;
    b.set(src, 12); b.set(dst, 16); b.set(t, 20);
    return b;
  }
  const b = new Uint8Array(40 + t.length);
  b[0] = 0x60; b[4] = t.length >> 8; b[5] = t.length & 0xff; b[6] = s.proto; b[7] = 64;
  b.set(src, 8); b.set(dst, 24); b.set(t, 40);
  return b;
}

/** An IPv4 fragment: `offsetBlocks` in 8-byte units, with the more-fragments bit. */
export function fragment4(s: PacketSpec, offsetBlocks: number, more: boolean): Uint8Array {
  const b = build(s);
  b[6] = (more ? 0x20 : 0) | (offsetBlocks >> 8); b[7] = offsetBlocks & 0xff;
  return b;
}

/** An IPv6 packet with a Fragment header in front of the transport of `s`. */
export function fragment6(s: PacketSpec, offsetBlocks: number, more: boolean): Uint8Array {
  const inner = build(s);
  const t = inner.subarray(40);
  const body = offsetBlocks === 0 ? t : new Uint8Array(16).fill(0x61);
  const b = new Uint8Array(48 + body.length);
  b.set(inner.subarray(0, 40));
  const plen = 8 + body.length;
  b[4] = plen >> 8; b[5] = plen & 0xff; b[6] = 44;
  b[40] = s.proto; b[42] = (offsetBlocks << 3) >> 8; b[43] = ((offsetBlocks << 3) & 0xf8) | (more ? 1 : 0);
  b.set([0xde, 0xad, 0xbe, 0xef], 44);
  b.set(body, 48);
  return b;
}
