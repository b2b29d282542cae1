/**
 * ICMP echo packets for `lattice ping --icmp|--tsmp` (RFC 792 / RFC 4443): the engine
 * injects an echo request from our tailnet address into the tunnel and recognises the
 * peer's echo reply before it reaches the TUN. TSMP pings are sent as ICMP here (Lattice
 * has no TSMP yet; the answer measures the same: the peer's WireGuard + IP stack).
 * Pure: bytes in, bytes out.
 */
import { fold, sum16 } from "./checksum.js";

/**
 * An ICMP(v6) echo request from `src` to `dst` (both 4 or both 16 bytes) with identifier
 * `id`, sequence `seq` and `payload`. Throws RangeError for mixed families.
 */
export function buildEchoRequest(src: Uint8Array, dst: Uint8Array, id: number, seq: number, payload: Uint8Array): Uint8Array {
  if (src.length !== dst.length || (src.length !== 4 && src.length !== 16)) throw new RangeError("echo request: addresses must both be IPv4 or both IPv6");
  const v4 = src.length === 4;
  const hl = v4 ? 20 : 40;
  const icmpLen = 8 + payload.length;
  const p = new Uint8Array(hl + icmpLen);
  const dv = new DataView(p.buffer);
  if (v4) {
    p[0] = 0x45;
    dv.setUint16(2, p.length);
    dv.setUint16(4, id); // IP identification: any
    p[8] = 64; // TTL
    p[9] = 1; // ICMP
    p.set(src, 12);
    p.set(dst, 16);
    dv.setUint16(10, fold(sum16(p, 0, 20, 0)));
  } else {
    p[0] = 0x60;
    dv.setUint16(4, icmpLen);
    p[6] = 58; // ICMPv6
    p[7] = 64; // hop limit
    p.set(src, 8);
    p.set(dst, 24);
  }
  p[hl] = v4 ? 8 : 128; // echo request
  dv.setUint16(hl + 4, id);
  dv.setUint16(hl + 6, seq);
  p.set(payload, hl + 8);
  let acc = sum16(p, hl, icmpLen, 0);
  if (!v4) {
    // RFC 8200 §8.1 pseudo-header: src, dst, upper-layer length, next header.
    acc = sum16(p, 8, 32, acc) + icmpLen + 58;
  }
  dv.setUint16(hl + 2, fold(acc));
  return p;
}

/** An echo reply's source address, identifier and sequence; null for anything else. */
export function parseEchoReply(p: Uint8Array): { src: Uint8Array; id: number; seq: number } | null {
  if (p.length < 28) return null;
  const ver = p[0]! >> 4;
  if (ver === 4) {
    const hl = (p[0]! & 0x0f) * 4;
    if (p[9] !== 1 || hl < 20 || p.length < hl + 8 || p[hl] !== 0 || p[hl + 1] !== 0) return null;
    if (((p[6]! & 0x1f) | p[7]!) !== 0) return null; // a fragment
    return { src: p.subarray(12, 16), id: (p[hl + 4]! << 8) | p[hl + 5]!, seq: (p[hl + 6]! << 8) | p[hl + 7]! };
  }
  if (ver === 6) {
    if (p.length < 48 || p[6] !== 58 || p[40] !== 129 || p[41] !== 0) return null;
    return { src: p.subarray(8, 24), id: (p[44]! << 8) | p[45]!, seq: (p[46]! << 8) | p[47]! };
  }
  return null;
}
