/**
 * @lattice/dns: MagicDNS, sans-IO — the zone built from a netmap ({@link Zone}) and the
 * resolver core deciding answer / forward / drop per query ({@link Resolver}).
 */
export * from "./zone.js";
export * from "./resolver.js";
