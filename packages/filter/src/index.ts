/**
 * @lattice/filter: the node's stateful packet filter (Tailscale's wgengine/filter
 * semantics) over tailcfg FilterRules, sans-IO and allocation-free per packet.
 */
export * from "./filter.js";
export * from "./verdict.js";
export * from "./errors.js";
export * from "./packet.js";
export { compileRules, type CompiledRules } from "./compile.js";
export { parseAddrSet, type AddrRange, type ParsedSet } from "./ipset.js";
export { FlowTable, type FlowTableOptions } from "./flows.js";
