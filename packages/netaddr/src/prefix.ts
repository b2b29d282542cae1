/**
 * IP prefixes (CIDR) as bytes, parsed as Go's `netip.ParsePrefix` does: no zones, the
 * length in decimal without sign or leading zeros, at most 32 (IPv4) or 128 (IPv6).
 */
import { formatIp, maskBytes, parseIp } from "./ip.js";

/** A prefix: `bytes` (4 or 16, host bits zero) and the prefix length `bits`. */
export interface Prefix {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/**
 * Parses `addr/bits` text; the address comes back with its host bits masked off
 * (`10.1.2.3/8` → 10.0.0.0/8). Returns null for anything else; never throws.
 */
export function parsePrefix(text: string): Prefix | null {
  const slash = text.lastIndexOf("/");
  if (slash < 0) return null;
  const ip = parseIp(text.slice(0, slash));
  if (ip === null) return null;
  const bitsText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  if (bits > (ip.family === 4 ? 32 : 128)) return null;
  return { family: ip.family, bytes: maskBytes(ip.bytes, bits), bits };
}

/** Formats a prefix as `address/bits` (RFC 5952 for IPv6). */
export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.bytes)}/${p.bits}`;
}

/** Whether `ip` (4 or 16 bytes) lies in `p`; an address of the other family never does. */
export function prefixContains(p: Prefix, ip: Uint8Array): boolean {
  if (ip.length !== p.bytes.length) return false;
  let bits = p.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i]! & mask) !== p.bytes[i]) return false;
  }
  return true;
}
