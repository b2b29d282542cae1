/**
 * @lattice/tun: Linux TUN interfaces for the WireGuard edge, through a small N-API addon
 * (uv_poll on the JS thread, one callback per batch). The same addon carries the batched
 * UDP socket's system calls, whose TypeScript side is @lattice/udp.
 */
export { TunDevice, type Tun, type TunOpenOptions, type TunHandlers, type TunStats } from "./tun.js";
export { packetAt, errnoName, type PacketBatch } from "./batch.js";
export { TunError, type TunErrorCode } from "./errors.js";
export { loadNative, type NativeAddon, type ReaderHandle } from "./native.js";
