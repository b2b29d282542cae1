/**
 * Address sets of the filter: the tailcfg address forms (`*`, an IP, a CIDR, an inclusive
 * `a-b` range, `cap:name`) parsed as Tailscale's `wgengine/filter.parseIPSet` does, and a
 * sorted, merged range set searched without allocating. Addresses are four 32-bit words
 * (IPv4 in word 3), see {@link ParsedPacket}.
 */
import { parseIp } from "@lattice/netaddr";

/** An inclusive range of one family as 128-bit integers (IPv4 as 0..2^32-1). */
export interface AddrRange {
  readonly family: 4 | 6;
  readonly lo: bigint;
  readonly hi: bigint;
}

/** Result of parsing one address-set string. */
export type ParsedSet =
  | { readonly ok: true; readonly ranges: AddrRange[]; readonly cap?: string }
  | { readonly ok: false; readonly message: string };

const V4_ALL: AddrRange = { family: 4, lo: 0n, hi: (1n << 32n) - 1n };
const V6_ALL: AddrRange = { family: 6, lo: 0n, hi: (1n << 128n) - 1n };

function toBig(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const x of bytes) n = (n << 8n) | BigInt(x);
  return n;
}

/**
 * Parses `*` (both families), `cap:NAME` (no addresses; the capability name), `IP/bits`
 * (host bits must be zero, like Go's check), `IP1-IP2` (same family, IP1 ≤ IP2) or a
 * single IP. Returns an error message instead of throwing.
 */
export function parseAddrSet(text: string): ParsedSet {
  if (text === "*") return { ok: true, ranges: [V4_ALL, V6_ALL] };
  if (text.startsWith("cap:")) return { ok: true, ranges: [], cap: text.slice(4) };
  const slash = text.indexOf("/");
  if (slash >= 0) {
    const ip = parseIp(text.slice(0, slash));
    const bitsText = text.slice(slash + 1);
    if (ip === null || !/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) return { ok: false, message: `invalid CIDR prefix ${JSON.stringify(text)}` };
    const width = ip.family === 4 ? 32 : 128;
    const bits = Number(bitsText);
    if (bits > width) return { ok: false, message: `prefix length ${bits} too long in ${JSON.stringify(text)}` };
    const host = (1n << BigInt(width - bits)) - 1n;
    const n = toBig(ip.bytes);
    if ((n & host) !== 0n) return { ok: false, message: `${text} contains non-network bits set` };
    return { ok: true, ranges: [{ family: ip.family, lo: n, hi: n | host }] };
  }
  const dash = text.indexOf("-");
  if (dash >= 0 && dash === text.lastIndexOf("-")) {
    const a = parseIp(text.slice(0, dash));
    const b = parseIp(text.slice(dash + 1));
    if (a === null || b === null) return { ok: false, message: `invalid IP range ${JSON.stringify(text)}` };
    const lo = toBig(a.bytes);
    const hi = toBig(b.bytes);
    if (a.family !== b.family || lo > hi) return { ok: false, message: `invalid IP range ${JSON.stringify(text)}` };
    return { ok: true, ranges: [{ family: a.family, lo, hi }] };
  }
  const ip = parseIp(text);
  if (ip === null) return { ok: false, message: `invalid IP address ${JSON.stringify(text)}` };
  const n = toBig(ip.bytes);
  return { ok: true, ranges: [{ family: ip.family, lo: n, hi: n }] };
}

/** Writes a 128-bit integer as four big-endian words at `out[at..at+3]`. */
export function writeWords(n: bigint, out: Uint32Array, at: number): void {
  for (let i = 3; i >= 0; i--) {
    out[at + i] = Number(n & 0xffffffffn);
    n >>= 32n;
  }
}

/** Compares `a[ai..ai+3]` with `b[bi..bi+3]` as 128-bit unsigned integers: <0, 0, >0. */
export function cmpWords(a: Uint32Array, ai: number, b: Uint32Array, bi: number): number {
  for (let i = 0; i < 4; i++) {
    const x = a[ai + i]!;
    const y = b[bi + i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * A set of addresses of one family as sorted, disjoint, non-adjacent ranges; membership by
 * binary search, no allocation.
 */
export class RangeSet {
  /** Per range 8 words: lo (4), hi (4). */
  private readonly words: Uint32Array;
  /** Number of ranges. */
  readonly size: number;

  constructor(ranges: readonly AddrRange[]) {
    const sorted = [...ranges].sort((x, y) => (x.lo < y.lo ? -1 : x.lo > y.lo ? 1 : 0));
    const merged: { lo: bigint; hi: bigint }[] = [];
    for (const r of sorted) {
      const last = merged[merged.length - 1];
      if (last !== undefined && r.lo <= last.hi + 1n) {
        if (r.hi > last.hi) last.hi = r.hi;
      } else {
        merged.push({ lo: r.lo, hi: r.hi });
      }
    }
    this.size = merged.length;
    this.words = new Uint32Array(merged.length * 8);
    merged.forEach((r, i) => {
      writeWords(r.lo, this.words, i * 8);
      writeWords(r.hi, this.words, i * 8 + 4);
    });
  }

  /** Whether the address `ip` (4 words) is in the set. */
  contains(ip: Uint32Array): boolean {
    const w = this.words;
    let lo = 0;
    let hi = this.size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (cmpWords(ip, 0, w, mid * 8) < 0) hi = mid - 1;
      else if (cmpWords(ip, 0, w, mid * 8 + 4) > 0) lo = mid + 1;
      else return true;
    }
    return false;
  }
}
