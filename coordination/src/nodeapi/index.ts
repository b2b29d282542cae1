/** The node-facing control API: Noise channel, register, map streaming. */
export * from "./backend.js";
export * from "./validate.js";
export * from "./map-stream.js";
export * from "./attach.js";
