/**
 * The Internet checksum (RFC 1071) for the packets latticed builds itself (ICMP echo,
 * MagicDNS UDP replies): a 16-bit big-endian one's-complement sum, then folded and
 * complemented. divert.ts updates existing checksums incrementally instead (RFC 1624).
 */

/** Adds the big-endian 16-bit words of `b[off..off+len]` to `acc` (odd tail padded with 0). */
export function sum16(b: Uint8Array, off: number, len: number, acc: number): number {
  for (let i = 0; i + 1 < len; i += 2) acc += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len & 1) acc += b[off + len - 1]! << 8;
  return acc;
}

/** Folds a running sum to 16 bits and complements it: the checksum field's value. */
export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}
