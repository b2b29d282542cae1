/** lattice-derp as a library (for tests and for embedding later). */
export { buildConfig, type RelayConfig, type RawFlags } from "./config.js";
export { startRelay, type Relay } from "./relay.js";
export { RelayError, FlagError } from "./errors.js";
