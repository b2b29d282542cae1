/**
 * Inner IP packet helpers for the data path: where the source and destination
 * addresses sit, and the packet's real length (to trim transport padding).
 */

/** Offset/family of the destination address of an IPv4/IPv6 packet, or null if malformed. */
export function destinationOf(p: Uint8Array): { offset: number; family: 4 | 6 } | null {
  if (p.length >= 20 && p[0] >> 4 === 4) return { offset: 16, family: 4 };
  if (p.length >= 40 && p[0] >> 4 === 6) return { offset: 24, family: 6 };
  return null;
}

/**
 * Length of the IP packet at the start of `p` (IPv4 total length, IPv6 40 + payload
 * length), or −1 when the header is malformed or claims more than `p` holds.
 */
export function innerPacketLength(p: Uint8Array, n: number): number {
  const v = p[0] >> 4;
  if (v === 4) {
    if (n < 20) return -1;
    const len = (p[2] << 8) | p[3];
    return len < 20 || len > n ? -1 : len;
  }
  if (v === 6) {
    if (n < 40) return -1;
    const len = 40 + ((p[4] << 8) | p[5]);
    return len > n ? -1 : len;
  }
  return -1;
}
