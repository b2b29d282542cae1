/** Server side of the Noise control channel (HTTP upgrade + HTTP/2 over Noise). */
export * from "./upgrade.js";
export * from "./h2.js";
