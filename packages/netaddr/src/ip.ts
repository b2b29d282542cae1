/**
 * IP address text ↔ bytes, following Go's `net/netip` rules (what wireguard-go and
 * Tailscale accept and print): strict dotted quads (no leading zeros), RFC 4291 IPv6 text
 * with at most one `::` and an optional trailing dotted quad, RFC 5952 output (lower case,
 * the first longest run of two or more zero groups compressed), and IPv4-mapped IPv6
 * printed as `::ffff:a.b.c.d`. Parsers return `null` on bad input; they never throw.
 */

/** Address bytes plus family: 4 bytes for IPv4, 16 for IPv6. */
export interface ParsedIp {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  /** IPv6 zone (`fe80::1%eth0` → `eth0`), or undefined. */
  readonly zone?: string;
}

/** Parses a strict dotted quad (`1.2.3.4`; no leading zeros, no shorthand) or returns null. */
export function parseIpv4(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  return parseIpv4Into(text, 0, text.length, out, 0) ? out : null;
}

function parseIpv4Into(s: string, start: number, end: number, out: Uint8Array, at: number): boolean {
  let field = 0;
  let val = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && val === 0) return false; // leading zero
      val = val * 10 + (c - 48);
      digits++;
      if (val > 255) return false;
    } else if (c === 46) {
      if (digits === 0 || field === 3) return false;
      out[at + field++] = val;
      val = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  if (field !== 3 || digits === 0) return false;
  out[at + 3] = val;
  return true;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Parses IPv6 text (optionally with a `%zone`) or returns null. A zone is returned only
 * when `allowZone` is true; otherwise text with a zone is rejected.
 */
export function parseIpv6(text: string, allowZone = false): ParsedIp | null {
  let end = text.length;
  let zone: string | undefined;
  const pct = text.indexOf("%");
  if (pct >= 0) {
    if (!allowZone || pct === text.length - 1) return null;
    zone = text.slice(pct + 1);
    end = pct;
  }
  const out = new Uint8Array(16);
  let i = 0;
  let pos = 0;
  let ellipsis = -1;
  if (end >= 2 && text.charCodeAt(0) === 58 && text.charCodeAt(1) === 58) {
    ellipsis = 0;
    pos = 2;
    if (pos === end) return zone === undefined ? { family: 6, bytes: out } : { family: 6, bytes: out, zone };
  }
  while (i < 16) {
    let off = 0;
    let acc = 0;
    while (pos + off < end) {
      const h = hexVal(text.charCodeAt(pos + off));
      if (h < 0) break;
      acc = (acc << 4) | h;
      off++;
      if (off > 4) return null;
    }
    if (off === 0) return null;
    if (pos + off < end && text.charCodeAt(pos + off) === 46) {
      // Trailing dotted quad.
      if (ellipsis < 0 && i !== 12) return null;
      if (i > 12) return null;
      if (!parseIpv4Into(text, pos, end, out, i)) return null;
      pos = end;
      i += 4;
      break;
    }
    out[i] = acc >> 8;
    out[i + 1] = acc & 0xff;
    i += 2;
    pos += off;
    if (pos === end) break;
    if (text.charCodeAt(pos) !== 58) return null;
    pos++;
    if (pos === end) return null; // trailing single colon
    if (text.charCodeAt(pos) === 58) {
      if (ellipsis >= 0) return null;
      ellipsis = i;
      pos++;
      if (pos === end) break;
    }
  }
  if (pos !== end) return null;
  if (i < 16) {
    if (ellipsis < 0) return null;
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) out[j + n] = out[j];
    for (let j = ellipsis + n - 1; j >= ellipsis; j--) out[j] = 0;
  } else if (ellipsis >= 0) {
    return null; // "::" must stand for at least one zero group
  }
  return zone === undefined ? { family: 6, bytes: out } : { family: 6, bytes: out, zone };
}

/**
 * Parses an IPv4 or IPv6 address (IPv6 when the text contains `:`), or returns null.
 * Zones are accepted only with `allowZone`.
 */
export function parseIp(text: string, allowZone = false): ParsedIp | null {
  if (text.indexOf(":") >= 0) return parseIpv6(text, allowZone);
  const b = parseIpv4(text);
  return b === null ? null : { family: 4, bytes: b };
}

/** Formats 4 bytes as a dotted quad. */
export function formatIpv4(b: Uint8Array, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** Formats 16 bytes as RFC 5952 IPv6 text (`::ffff:a.b.c.d` for IPv4-mapped, as Go does). */
export function formatIpv6(b: Uint8Array, offset = 0): string {
  let mapped = b[offset + 10] === 0xff && b[offset + 11] === 0xff;
  for (let j = 0; j < 10 && mapped; j++) if (b[offset + j] !== 0) mapped = false;
  if (mapped) return "::ffff:" + formatIpv4(b, offset + 12);
  let zs = -1;
  let ze = -1;
  for (let g = 0; g < 8; g++) {
    let j = g;
    while (j < 8 && b[offset + 2 * j] === 0 && b[offset + 2 * j + 1] === 0) j++;
    if (j - g >= 2 && j - g > ze - zs) {
      zs = g;
      ze = j;
    }
    if (j > g) g = j - 1;
  }
  let s = "";
  for (let g = 0; g < 8; g++) {
    if (g === zs) {
      s += "::";
      g = ze - 1;
      continue;
    }
    if (s.length > 0 && !s.endsWith(":")) s += ":";
    s += ((b[offset + 2 * g] << 8) | b[offset + 2 * g + 1]).toString(16);
  }
  return s;
}

/** Formats 4 or 16 address bytes; throws RangeError for other lengths. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return formatIpv4(bytes);
  if (bytes.length === 16) return formatIpv6(bytes);
  throw new RangeError(`IP address must be 4 or 16 bytes, got ${bytes.length}`);
}

/** Zeroes the bits of `bytes` beyond the first `bits` (in place) and returns it. */
export function maskBytes(bytes: Uint8Array, bits: number): Uint8Array {
  for (let i = 0; i < bytes.length; i++) {
    const keep = bits - i * 8;
    if (keep >= 8) continue;
    bytes[i] = keep <= 0 ? 0 : bytes[i] & (0xff << (8 - keep));
  }
  return bytes;
}

/**
 * True for an address of the tailnet ranges: IPv4 100.64.0.0/10 (CGNAT, RFC 6598) and
 * IPv6 fd7a:115c:a1e0::/48 (Tailscale's tsaddr.IsTailscaleIP). `ip` is 4 or 16 bytes
 * (an IPv4-mapped IPv6 address counts as IPv4).
 */
export function isTailnetIp(ip: Uint8Array): boolean {
  if (ip.length === 16 && ip.subarray(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff) return isTailnetIp(ip.subarray(12));
  if (ip.length === 4) return ip[0] === 100 && (ip[1]! & 0xc0) === 64;
  return ip.length === 16 && ip[0] === 0xfd && ip[1] === 0x7a && ip[2] === 0x11 && ip[3] === 0x5c && ip[4] === 0xa1 && ip[5] === 0xe0;
}
