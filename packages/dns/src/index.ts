/**
 * @lattice/dns: MagicDNS, sans-IO — the zone built from a netmap ({@link Zone}) and the
 * resolver core deciding answer / forward / drop per query ({@link Resolver}) and the
 * DNS-over-TCP framing ({@link TcpFramer}).
 */
export * from "./zone.js";
export * from "./resolver.js";
export * from "./tcp.js";
