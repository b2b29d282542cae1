export * from "./tailcfg.js";
export * from "./tailcfg-filter.js";
