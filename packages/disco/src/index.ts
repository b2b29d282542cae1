/**
 * @lattice/disco: Tailscale's disco protocol (Ping, Pong, CallMeMaybe in a NaCl box behind
 * the `TS💬` magic), sans-IO.
 */
export * from "./errors.js";
export * from "./message.js";
export * from "./packet.js";
