/** Marker so the smoke test can check that tests import TypeScript sources. */
export const typesPackage = "@lattice/types";
export * from "./tailcfg.js";
export * from "./tailcfg-filter.js";
