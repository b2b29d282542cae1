/**
 * @lattice/tun: Linux TUN interfaces and batched UDP sockets for the WireGuard edge,
 * through a small N-API addon (uv_poll on the JS thread, one callback per batch).
 */
export { TunDevice, type TunOpenOptions, type TunHandlers, type TunStats } from "./tun.js";
export {
  BatchUdpSocket,
  ADDR_RECORD_BYTES,
  decodeAddress,
  encodeAddress,
  type DatagramBatch,
  type UdpAddress,
  type UdpLocal,
  type UdpBindOptions,
  type UdpHandlers,
  type UdpStats,
} from "./udp.js";
export { packetAt, errnoName, type PacketBatch } from "./batch.js";
export { TunError, type TunErrorCode } from "./errors.js";
export { loadNative, type NativeAddon, type ReaderHandle } from "./native.js";
