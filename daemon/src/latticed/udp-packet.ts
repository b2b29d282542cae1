/**
 * IPv4/IPv6 UDP packets for the MagicDNS resolver on the TUN (RFC 791, RFC 8200, RFC 768):
 * recognising a datagram read from the TUN and building the reply written back to it,
 * with the IPv4 header checksum and the UDP checksum (pseudo-header; mandatory in IPv6).
 * Pure: bytes in, bytes out; anything odd (fragments, IPv4 options are fine, IPv6
 * extension headers are not followed) → null.
 */
import { fold, sum16 } from "./checksum.js";

/** A parsed UDP datagram; `payload` is a view into the packet. */
export interface UdpDatagram {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/**
 * The UDP datagram in IP packet `p`, or null when `p` is not a complete unfragmented
 * UDP packet (length fields checked against the buffer; checksums not verified: the
 * packet comes from our own host's kernel).
 */
export function parseUdp(p: Uint8Array): UdpDatagram | null {
  if (p.length < 28) return null;
  const ver = p[0]! >> 4;
  let hl: number;
  let total: number;
  let family: 4 | 6;
  let src: Uint8Array;
  let dst: Uint8Array;
  if (ver === 4) {
    hl = (p[0]! & 0x0f) * 4;
    total = (p[2]! << 8) | p[3]!;
    if (hl < 20 || p[9] !== 17 || total > p.length || total < hl + 8) return null;
    if ((p[6]! & 0x3f) !== 0 || p[7] !== 0) return null; // MF set or an offset: a fragment
    family = 4;
    src = p.subarray(12, 16);
    dst = p.subarray(16, 20);
  } else if (ver === 6) {
    if (p.length < 48 || p[6] !== 17) return null;
    hl = 40;
    total = 40 + ((p[4]! << 8) | p[5]!);
    if (total > p.length || total < 48) return null;
    family = 6;
    src = p.subarray(8, 24);
    dst = p.subarray(24, 40);
  } else {
    return null;
  }
  const ulen = (p[hl + 4]! << 8) | p[hl + 5]!;
  if (ulen < 8 || hl + ulen > total) return null;
  return {
    family,
    src,
    dst,
    srcPort: (p[hl]! << 8) | p[hl + 1]!,
    dstPort: (p[hl + 2]! << 8) | p[hl + 3]!,
    payload: p.subarray(hl + 8, hl + ulen),
  };
}

/**
 * An IP+UDP packet from `src`:`srcPort` to `dst`:`dstPort` (addresses both 4 or both 16
 * bytes) carrying `payload`, TTL/hop limit 64, checksums filled in. Throws RangeError for
 * mixed families or a payload over 65 507 bytes.
 */
export function buildUdp(src: Uint8Array, dst: Uint8Array, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  if (src.length !== dst.length || (src.length !== 4 && src.length !== 16)) throw new RangeError("udp packet: addresses must both be IPv4 or both IPv6");
  if (payload.length > 65_507) throw new RangeError(`udp packet: payload of ${payload.length} bytes is too large`);
  const v4 = src.length === 4;
  const hl = v4 ? 20 : 40;
  const ulen = 8 + payload.length;
  const p = new Uint8Array(hl + ulen);
  const dv = new DataView(p.buffer);
  if (v4) {
    p[0] = 0x45;
    dv.setUint16(2, p.length);
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 17;
    p.set(src, 12);
    p.set(dst, 16);
    dv.setUint16(10, fold(sum16(p, 0, 20, 0)));
  } else {
    p[0] = 0x60;
    dv.setUint16(4, ulen);
    p[6] = 17;
    p[7] = 64;
    p.set(src, 8);
    p.set(dst, 24);
  }
  dv.setUint16(hl, srcPort);
  dv.setUint16(hl + 2, dstPort);
  dv.setUint16(hl + 4, ulen);
  p.set(payload, hl + 8);
  // Pseudo-header (RFC 768; RFC 8200 §8.1): addresses, protocol, UDP length.
  let acc = sum16(src, 0, src.length, 0) + sum16(dst, 0, dst.length, 0) + 17 + ulen;
  acc = sum16(p, hl, ulen, acc);
  const c = fold(acc);
  dv.setUint16(hl + 6, c === 0 ? 0xffff : c);
  return p;
}
