/**
 * IP text ↔ bytes for the WireGuard package: re-exported from @lattice/netaddr (the one
 * implementation), plus `parsePrefix`/`formatPrefix` in the UAPI's AllowedIp shape.
 */
import { formatIp, parsePrefix as parsePrefixBytes } from "@lattice/netaddr";
import type { AllowedIp } from "./api.js";

export { formatIp, formatIpv4, formatIpv6, maskBytes, parseIp, parseIpv4, parseIpv6, type ParsedIp } from "@lattice/netaddr";

/**
 * Parses `addr/bits` CIDR text as Go's `netip.ParsePrefix` does (no zones, prefix length
 * in decimal without sign or leading zeros) and returns the prefix with host bits masked
 * off and the address in canonical text, or null.
 */
export function parsePrefix(text: string): AllowedIp | null {
  const p = parsePrefixBytes(text);
  return p === null ? null : { address: formatIp(p.bytes), family: p.family, bits: p.bits };
}

/** Formats a prefix as `address/bits`. */
export function formatPrefix(p: AllowedIp): string {
  return `${p.address}/${p.bits}`;
}
