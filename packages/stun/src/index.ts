/**
 * @lattice/stun: sans-IO STUN Binding codec (RFC 8489, wire-compatible with RFC 5389):
 * request/response encode and parse, XOR-MAPPED-ADDRESS, FINGERPRINT. Parsers return
 * typed errors and never throw on input bytes. Plus {@link startStunServer}, the Node UDP
 * edge (./node-server.ts).
 */
export * from "./errors.js";
export * from "./crc32.js";
export * from "./message.js";
export * from "./binding.js";
export * from "./node-server.js";
