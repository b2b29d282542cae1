/**
 * IP address arithmetic for the policy compiler: addresses as bigints, ranges,
 * prefixes, and a small normalized IP set. IPv4 and IPv6 never mix in a range.
 */

/** An inclusive address range within one family. */
export interface IPRange {
  /** true for IPv6. */
  v6: boolean;
  /** First address. */
  lo: bigint;
  /** Last address (inclusive). */
  hi: bigint;
}

/** A single parsed address. */
export interface Addr {
  /** true for IPv6. */
  v6: boolean;
  /** The address as an integer. */
  n: bigint;
}

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;

/** Parses a dotted-quad IPv4 address; null when malformed. */
function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    if (p.length > 1 && p.startsWith("0")) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = (n << 8n) | BigInt(v);
  }
  return n;
}

/** Parses an IPv6 address (with optional embedded IPv4 tail); null when malformed. */
function parseV6(s: string): bigint | null {
  if (s.includes("%")) return null;
  let tail: bigint | null = null;
  let str = s;
  const lastColon = str.lastIndexOf(":");
  if (lastColon >= 0 && str.slice(lastColon + 1).includes(".")) {
    tail = parseV4(str.slice(lastColon + 1));
    if (tail === null) return null;
    str = str.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = str.split("::");
  if (dbl.length > 2) return null;
  const head = dbl[0] === "" ? [] : dbl[0].split(":");
  const rest = dbl.length === 2 ? (dbl[1] === "" ? [] : dbl[1].split(":")) : [];
  let groups: string[];
  if (dbl.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return null;
    groups = [...head, ...Array<string>(missing).fill("0"), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail !== null) n = (n & ~0xffffffffn) | tail;
  return n;
}

/** Parses an IPv4 or IPv6 address; null when it is not one. */
export function parseAddr(s: string): Addr | null {
  if (s.includes(":")) {
    const n = parseV6(s);
    return n === null ? null : { v6: true, n };
  }
  const n = parseV4(s);
  return n === null ? null : { v6: false, n };
}

/** Formats an address in canonical form (RFC 5952 for IPv6). */
export function formatAddr(v6: boolean, n: bigint): string {
  if (!v6) {
    return [24n, 16n, 8n, 0n].map((sh) => String((n >> sh) & 255n)).join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // Longest run of zero groups (length >= 2) becomes "::".
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/** Parses "addr" or "addr/bits" into a range; null when malformed. Host bits are masked. */
export function parsePrefix(s: string): (IPRange & { bits: number }) | null {
  const slash = s.indexOf("/");
  const addrPart = slash >= 0 ? s.slice(0, slash) : s;
  const a = parseAddr(addrPart);
  if (!a) return null;
  const width = a.v6 ? 128 : 32;
  let bits = width;
  if (slash >= 0) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return null;
    bits = Number(b);
    if (bits > width) return null;
  }
  const hostBits = BigInt(width - bits);
  const mask = (1n << hostBits) - 1n;
  const lo = a.n & ~mask & (a.v6 ? V6_MAX : V4_MAX);
  return { v6: a.v6, lo, hi: lo | mask, bits };
}

/** The range covered by a single address. */
export function addrRange(a: Addr): IPRange {
  return { v6: a.v6, lo: a.n, hi: a.n };
}

/** Whether the range is exactly one CIDR prefix; returns its length or -1. */
function prefixBits(r: IPRange): number {
  const width = r.v6 ? 128 : 32;
  const size = r.hi - r.lo + 1n;
  if ((size & (size - 1n)) !== 0n) return -1;
  if ((r.lo & (size - 1n)) !== 0n) return -1;
  let hb = 0;
  while (1n << BigInt(hb) < size) hb++;
  return width - hb;
}

/** Splits a range into the minimal list of CIDR prefixes covering it exactly. */
export function rangeToPrefixes(r: IPRange): IPRange[] {
  const out: IPRange[] = [];
  const max = r.v6 ? V6_MAX : V4_MAX;
  let lo = r.lo;
  while (lo <= r.hi) {
    let size = 1n;
    // Grow the block while it stays aligned and inside the range.
    while ((lo & (size * 2n - 1n)) === 0n && lo + size * 2n - 1n <= r.hi && size * 2n - 1n <= max) size *= 2n;
    out.push({ v6: r.v6, lo, hi: lo + size - 1n });
    lo += size;
  }
  return out;
}

/** Formats a CIDR-aligned range: bare address for a single host, else "addr/bits". */
export function formatPrefix(r: IPRange): string {
  const a = formatAddr(r.v6, r.lo);
  if (r.lo === r.hi) return a;
  const bits = prefixBits(r);
  if (bits < 0) return `${a}-${formatAddr(r.v6, r.hi)}`;
  return `${a}/${bits}`;
}

/** Formats a CIDR-aligned range always with its prefix length ("addr/32" for hosts). */
export function formatPrefixFull(r: IPRange): string {
  const bits = prefixBits(r);
  return `${formatAddr(r.v6, r.lo)}/${bits}`;
}

/** Sorts and merges overlapping or adjacent ranges. */
export function normalizeRanges(ranges: readonly IPRange[]): IPRange[] {
  const sorted = [...ranges].sort((a, b) => (a.v6 !== b.v6 ? (a.v6 ? 1 : -1) : a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: IPRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && last.v6 === r.v6 && r.lo <= last.hi + 1n) {
      if (r.hi > last.hi) last.hi = r.hi;
    } else {
      out.push({ v6: r.v6, lo: r.lo, hi: r.hi });
    }
  }
  return out;
}

/** Whether two ranges share at least one address. */
export function rangesOverlap(a: IPRange, b: IPRange): boolean {
  return a.v6 === b.v6 && a.lo <= b.hi && b.lo <= a.hi;
}

/** Whether `outer` contains all of `inner`. */
export function rangeContains(outer: IPRange, inner: IPRange): boolean {
  return outer.v6 === inner.v6 && outer.lo <= inner.lo && inner.hi <= outer.hi;
}

/** An immutable, normalized set of addresses. */
export class IPSet {
  /** Normalized (sorted, merged) ranges. */
  readonly ranges: readonly IPRange[];

  /** Builds a set from any ranges (they are normalized). */
  constructor(ranges: readonly IPRange[]) {
    this.ranges = normalizeRanges(ranges);
  }

  /** Whether the set is empty. */
  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** Whether the set holds the address. */
  containsAddr(v6: boolean, n: bigint): boolean {
    for (const r of this.ranges) if (r.v6 === v6 && r.lo <= n && n <= r.hi) return true;
    return false;
  }

  /** Whether the set overlaps the range. */
  overlaps(x: IPRange): boolean {
    for (const r of this.ranges) if (rangesOverlap(r, x)) return true;
    return false;
  }

  /** Whether the set contains all of the range. */
  containsRange(x: IPRange): boolean {
    for (const r of this.ranges) if (rangeContains(r, x)) return true;
    return false;
  }

  /** The set as minimal CIDR prefixes. */
  prefixes(): IPRange[] {
    return this.ranges.flatMap(rangeToPrefixes);
  }

  /** The set as Tailscale-style strings: bare addresses for hosts, CIDRs otherwise. */
  strings(): string[] {
    return this.prefixes().map(formatPrefix);
  }
}

/** 100.64.0.0/10 minus 100.115.92.0/23 and fd7a:115c:a1e0::/48: what "*" means for sources. */
export const TAILNET_RANGES: readonly IPRange[] = [
  { v6: false, lo: parseAddr("100.64.0.0")!.n, hi: parseAddr("100.115.91.255")!.n },
  { v6: false, lo: parseAddr("100.115.94.0")!.n, hi: parseAddr("100.127.255.255")!.n },
  { v6: true, lo: parsePrefix("fd7a:115c:a1e0::/48")!.lo, hi: parsePrefix("fd7a:115c:a1e0::/48")!.hi },
];

/** The strings Tailscale emits for the tailnet ranges of a "*" source. */
export const TAILNET_RANGE_STRINGS: readonly string[] = [
  "100.64.0.0-100.115.91.255",
  "100.115.94.0-100.127.255.255",
  "fd7a:115c:a1e0::/48",
];

/** Every address of both families. */
export const ALL_RANGES: readonly IPRange[] = [
  { v6: false, lo: 0n, hi: V4_MAX },
  { v6: true, lo: 0n, hi: V6_MAX },
];

/** Whether a prefix string denotes a default route (0.0.0.0/0 or ::/0). */
export function isExitRoute(p: string): boolean {
  const r = parsePrefix(p);
  return !!r && r.bits === 0;
}

/** `a` minus `b` (normalized ranges). */
export function subtractRanges(a: readonly IPRange[], b: readonly IPRange[]): IPRange[] {
  let out = normalizeRanges(a);
  for (const x of normalizeRanges(b)) {
    const next: IPRange[] = [];
    for (const r of out) {
      if (!rangesOverlap(r, x)) {
        next.push(r);
        continue;
      }
      if (r.lo < x.lo) next.push({ v6: r.v6, lo: r.lo, hi: x.lo - 1n });
      if (x.hi < r.hi) next.push({ v6: r.v6, lo: x.hi + 1n, hi: r.hi });
    }
    out = next;
  }
  return out;
}

function pfx(s: string): IPRange {
  const p = parsePrefix(s)!;
  return { v6: p.v6, lo: p.lo, hi: p.hi };
}

/**
 * What `autogroup:internet` stands for: the public address space, i.e. all of IPv4 and
 * 2000::/3 minus the private (10/8, 172.16/12, 192.168/16, fc00::/7), CGNAT/Tailscale
 * (100.64/10, fd7a:115c:a1e0::/48) and link-local (169.254/16, fe80::/10) ranges.
 * Source: Tailscale's exit node filters as headscale reproduces them (`util.TheInternet`,
 * checked against captures of Tailscale's control plane); Tailscale docs kb/1337
 * "autogroup:internet: access to the internet through exit nodes".
 */
export const INTERNET_RANGES: readonly IPRange[] = subtractRanges(
  [pfx("0.0.0.0/0"), pfx("2000::/3")],
  ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10", "fd7a:115c:a1e0::/48"].map(pfx),
);

const INTERNET_SET = new IPSet(INTERNET_RANGES);

/** Whether the range lies entirely in the public internet ({@link INTERNET_RANGES}). */
export function isPublicRange(r: IPRange): boolean {
  return INTERNET_SET.containsRange(r);
}
