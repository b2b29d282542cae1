/**
 * The seams of the sans-IO WireGuard device: configuration as the UAPI sees it,
 * endpoints, and what the device hands to the I/O edge. The edge (daemon/) owns the
 * UDP socket, the TUN device and the timer; the device owns the protocol.
 */

/**
 * A UDP endpoint, as bytes (@lattice/netaddr): address, port and, on received datagrams,
 * the sticky source ("sticky sockets", wireguard-go's StdNetEndpoint) — the local address
 * and interface the peer's datagram arrived at, which replies are sent from. Configured
 * endpoints have no source.
 */
export { Endpoint, type EndpointSource } from "@lattice/netaddr";
import type { Endpoint } from "@lattice/netaddr";

/** One allowed-IP prefix. `bits` is the prefix length. */
export interface AllowedIp {
  readonly address: string;
  readonly family: 4 | 6;
  readonly bits: number;
}

/** A peer's part of a UAPI `set=1` request, in request order. */
export interface PeerUpdate {
  publicKey: Uint8Array;
  remove: boolean;
  updateOnly: boolean;
  /** null = set to no PSK (all-zero key given); undefined = unchanged. */
  presharedKey?: Uint8Array | null;
  endpoint?: Endpoint;
  /** Seconds, 0 = off. */
  persistentKeepaliveInterval?: number;
  replaceAllowedIps: boolean;
  allowedIps: AllowedIp[];
  /** Only 1 is accepted. */
  protocolVersion?: number;
}

/** A whole UAPI `set=1` request, already validated. */
export interface DeviceUpdate {
  /** null = remove the private key (all-zero key given); undefined = unchanged. */
  privateKey?: Uint8Array | null;
  listenPort?: number;
  /** 0 = off. */
  fwmark?: number;
  replacePeers: boolean;
  peers: PeerUpdate[];
}

/** A peer as UAPI `get=1` reports it. */
export interface PeerSnapshot {
  publicKey: Uint8Array;
  presharedKey: Uint8Array | null;
  endpoint: Endpoint | null;
  persistentKeepaliveInterval: number;
  allowedIps: AllowedIp[];
  /** Unix time of the last completed handshake, 0/0 when never. */
  lastHandshakeTimeSec: number;
  lastHandshakeTimeNsec: number;
  rxBytes: bigint;
  txBytes: bigint;
  protocolVersion: 1;
}

/** The device as UAPI `get=1` reports it. */
export interface DeviceSnapshot {
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  peers: PeerSnapshot[];
}

/** A datagram the device wants sent on the UDP socket. */
export interface OutgoingDatagram {
  readonly data: Uint8Array;
  readonly to: Endpoint;
}
