/**
 * @lattice/control-client: the node side of the control protocol — the Noise IK core
 * (shared with the server), the ts2021-style base transport, and a client that dials the
 * coordination server, registers and streams netmaps.
 */
export * from "./noise.js";
export * from "./controlbase.js";
export * from "./noise-duplex.js";
export * from "./mapframe.js";
export * from "./client.js";
