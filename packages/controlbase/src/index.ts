/**
 * @lattice/controlbase: the parts of the control protocol both ends share (as Tailscale's
 * `control/controlbase` plus `controlhttpcommon`) — the Noise IK core, the ts2021-style
 * handshake and record framing, the Noise-over-socket Duplex HTTP/2 runs on, the HTTP
 * upgrade constants and the map-response framing. The client lives in
 * @lattice/control-client, the server in coordination/src/noise.
 */
export * from "./noise.js";
export * from "./controlbase.js";
export * from "./noise-duplex.js";
export * from "./mapframe.js";
export * from "./upgrade.js";
