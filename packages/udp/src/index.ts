/**
 * @lattice/udp: the batched UDP socket of the WireGuard edge (recvmmsg/sendmmsg, GSO/GRO,
 * sticky sources, SO_MARK) with endpoints as @lattice/netaddr records, and UdpBind, the
 * socket behind @lattice/wireguard's Bind interface.
 */
export {
  BatchUdpSocket,
  ADDR_RECORD_BYTES,
  endpointAt,
  type DatagramBatch,
  type UdpBindOptions,
  type UdpHandlers,
  type UdpStats,
} from "./socket.js";
export { UdpBind, type UdpBindReceiver } from "./bind.js";
export { UdpError, type UdpErrorCode } from "./errors.js";
