/**
 * @lattice/netaddr: IP addresses, prefixes and UDP endpoints as bytes, with the one
 * text parser/formatter of each (Go net/netip rules, RFC 5952 output). Used by the
 * WireGuard device, the UDP socket and the edge.
 */
export * from "./ip.js";
export * from "./prefix.js";
export * from "./endpoint.js";
