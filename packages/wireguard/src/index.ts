/**
 * @lattice/wireguard: a sans-IO WireGuard device (Noise_IKpsk2 handshake, cookies,
 * timers, cryptokey routing) plus the UAPI text protocol. See device.ts for the
 * calling convention.
 */
export * from "./api.js";
export type { Bind, BindReceiver } from "./bind.js";
export * from "./constants.js";
export { Device, type DeviceOptions, type IncomingDatagram } from "./device.js";
export { DROP_REASONS, type DropReason, type DeviceStats } from "./stats.js";
export * from "./messages.js";
export * from "./noise.js";
export * from "./cookie.js";
export * from "./tai64n.js";
export { Keypair, Keypairs } from "./keypair.js";
export { IndexTable, type IndexEntry } from "./indextable.js";
export { PeerTimers, type TimerName } from "./timers.js";
export * from "./handshake.js";
export { Peer, Handshake, type HandshakeState } from "./peer.js";
export * from "./allowedips.js";
export * from "./replay.js";
export * from "./ipaddr.js";
export * from "./uapi.js";
