/**
 * @lattice/magicsock: Tailscale's magicsock for Lattice — one UDP socket for WireGuard,
 * disco and STUN, DERP legs, NAT traversal and per-peer path selection behind the
 * WireGuard Bind seam. See README.md.
 */
export * from "./api.js";
export * from "./errors.js";
export * from "./constants.js";
export * from "./addr.js";
export { type Candidate, type CandidateSource, betterAddr, PeerState } from "./peer.js";
export { MagicCore, ROUTE_DERP, ROUTE_UDP, type CoreOptions, type DerpOut, type UdpOut } from "./core.js";
export { handleDisco } from "./disco-handlers.js";
export { Netcheck, type StunTarget } from "./netcheck.js";
export { derpDial, derpNodes, homeEligible, regionsOf, stunHosts, type DerpDial } from "./derp-map.js";
export { localAddresses, ourEndpoints } from "./local-addrs.js";
export { DerpLegs, defaultDialDerp, type DerpLink, type DialDerp } from "./derp-legs.js";
export { newStats, type MagicStats } from "./stats.js";
export { MagicSock, type MagicSockOptions } from "./magicsock.js";
