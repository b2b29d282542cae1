/**
 * @lattice/udp: batched Linux UDP I/O for the WireGuard data path, through a small N-API
 * addon: recvmmsg (+ UDP GRO) with one JS callback per batch, sendmmsg (+ UDP GSO).
 */
export {
  openUdp,
  UdpSocket,
  type UdpOpenOptions,
  type UdpDatagram,
  type UdpStats,
  type UdpSocketInfo,
} from "./socket.js";
export { UdpBatch, META_STRIDE, type UdpEndpoint, type ReceivedDatagram } from "./batch.js";
export { UdpError, type UdpErrorCode } from "./errors.js";
export { loadNative, type NativeAddon, type NativeHandle, type NativeStats, type NativeOpenResult } from "./native.js";
