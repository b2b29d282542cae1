/**
 * Tailnet address allocation: IPv4 from 100.64.0.0/10 (never 100.100.100.100, the
 * MagicDNS resolver, nor 100.115.92.0/23), IPv6 from fd7a:115c:a1e0::/48 with the IPv4
 * address embedded in the low 32 bits, so each node's pair is stable and unique.
 */
import { ConflictError } from "../errors.js";

const BASE = (100 << 24) | (64 << 16); // 100.64.0.0
const SIZE = 1 << 22; // /10
const RESOLVER = ((100 << 24) | (100 << 16) | (100 << 8) | 100) >>> 0;
const RESERVED_LO = ((100 << 24) | (115 << 16) | (92 << 8)) >>> 0; // 100.115.92.0/23
const RESERVED_HI = RESERVED_LO + 512 - 1;

/** Formats a 32-bit number as dotted IPv4. */
export function ipv4ToString(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Parses dotted IPv4 into a 32-bit unsigned number (no validation beyond shape). */
export function ipv4ToNumber(s: string): number {
  const p = s.split(".").map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

/** True when the address may be handed to a node. */
export function isAssignableIPv4(n: number): boolean {
  const off = (n >>> 0) - (BASE >>> 0);
  if (off <= 0 || off >= SIZE - 1) return false; // network and broadcast-ish ends
  if (n === RESOLVER) return false;
  if (n >= RESERVED_LO && n <= RESERVED_HI) return false;
  return (n & 255) !== 0 && (n & 255) !== 255;
}

/** The IPv6 address paired with an IPv4 tailnet address. */
export function ipv6For(ipv4: string): string {
  const n = ipv4ToNumber(ipv4);
  return `fd7a:115c:a1e0::${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
}

/** The highest of `addresses` (dotted IPv4), or undefined for none. */
export function highestIPv4(addresses: Iterable<string>): string | undefined {
  let best: number | undefined;
  for (const a of addresses) {
    const n = ipv4ToNumber(a);
    if (best === undefined || n > best) best = n;
  }
  return best === undefined ? undefined : ipv4ToString(best);
}

/**
 * Picks the first free IPv4 address after `after` (the address handed out last; the start
 * of the range when absent), wrapping around at the end of 100.64.0.0/10. Handing
 * addresses out in one direction means a deleted node's address goes to a new node only
 * after every other address of the range (~4 M) was handed out once: a peer's stale
 * filter, DNS cache or firewall rule never names the wrong machine. (Tailscale picks a
 * random free address for the same reason.) Throws ConflictError `address_space_exhausted`
 * when the range is full.
 */
export function allocateIPv4(used: ReadonlySet<string>, after?: string): string {
  const start = after === undefined ? 0 : Math.max(0, ipv4ToNumber(after) - (BASE >>> 0));
  for (let k = 1; k < SIZE; k++) {
    const off = (start + k) % SIZE;
    const n = ((BASE >>> 0) + off) >>> 0;
    if (!isAssignableIPv4(n)) continue;
    const s = ipv4ToString(n);
    if (!used.has(s)) return s;
  }
  throw new ConflictError("address_space_exhausted", "tailnet address space 100.64.0.0/10 is exhausted: delete unused nodes");
}
