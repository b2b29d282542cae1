/**
 * DERP protocol v2 constants, as Tailscale's derp/derp.go defines them (the wire facts,
 * not the code): frame = 1-byte type ‖ 4-byte big-endian payload length ‖ payload.
 */

/** Largest packet payload a client may send or receive (bytes, excluding framing). */
export const MAX_PACKET_SIZE = 64 << 10;
/** FrameServerKey magic: "DERP🔑" in UTF-8 (8 bytes). */
export const MAGIC = Uint8Array.from([0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91]);
/** NaCl box nonce length. */
export const NONCE_LEN = 24;
/** Frame header length: type byte + uint32 length. */
export const FRAME_HEADER_LEN = 5;
/** Curve25519 public key length. */
export const KEY_LEN = 32;
/** Largest ServerInfo JSON a client accepts (bytes). */
export const MAX_INFO_LEN = 1 << 20;
/** Largest ClientInfo frame a server accepts before the client is trusted (Tailscale: 256 KiB). */
export const MAX_CLIENT_INFO_FRAME = 256 << 10;
/**
 * Largest frame a server reads from a client at all: ClientInfo's limit, which exceeds
 * ForwardPacket's 64 + MAX_PACKET_SIZE. Anything longer closes the connection.
 */
export const MAX_SERVER_READ_FRAME = MAX_CLIENT_INFO_FRAME;
/** Largest frame a client reads from a server: a ServerInfo box. */
export const MAX_CLIENT_READ_FRAME = NONCE_LEN + MAX_INFO_LEN;
/** Largest Ping payload a server accepts (Tailscale: 1000 bytes; only the first 8 are echoed). */
export const MAX_PING_LEN = 1000;
/** Ping/Pong payload length. */
export const PING_LEN = 8;
/** Protocol version sent in ClientInfo/ServerInfo (v2: RecvPacket carries the source key). */
export const PROTOCOL_VERSION = 2;
/** Minimum interval between server KeepAlive frames (ms); the server adds jitter. */
export const KEEP_ALIVE_MS = 60_000;
/** HTTP header asking the server to skip the 101 response headers (value "1"). */
export const FAST_START_HEADER = "Derp-Fast-Start";
/** HTTP header naming the client's ideal node (informational). */
export const IDEAL_NODE_HEADER = "Ideal-Node";
/** /generate_204 challenge request and response headers. */
export const NO_CONTENT_CHALLENGE_HEADER = "X-Tailscale-Challenge";
export const NO_CONTENT_RESPONSE_HEADER = "X-Tailscale-Response";

/** Frame types (derp.go). */
export const FrameType = {
  ServerKey: 0x01, // 8B magic + 32B public key + (0+ bytes future use)
  ClientInfo: 0x02, // 32B pub key + 24B nonce + naclbox(json)
  ServerInfo: 0x03, // 24B nonce + naclbox(json)
  SendPacket: 0x04, // 32B dest pub key + packet bytes
  RecvPacket: 0x05, // v2: 32B src pub key + packet bytes
  KeepAlive: 0x06, // no payload
  NotePreferred: 0x07, // 1 byte: 0x01 preferred (home) or 0x00
  PeerGone: 0x08, // 32B pub key + 1 byte reason
  PeerPresent: 0x09, // 32B pub key [+ 16B IP + 2B BE port [+ 1B flags]]
  ForwardPacket: 0x0a, // 32B src pub key + 32B dst pub key + packet bytes
  WatchConns: 0x10, // no payload; mesh key required
  ClosePeer: 0x11, // 32B pub key of peer to close; mesh key required
  Ping: 0x12, // 8 bytes, echoed in Pong
  Pong: 0x13, // 8 bytes
  Health: 0x14, // UTF-8 problem text; empty clears
  Restarting: 0x15, // BE uint32 reconnect-in ms + BE uint32 try-for ms
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** PeerGone reasons. */
export const PeerGoneReason = {
  Disconnected: 0x00,
  NotHere: 0x01,
} as const;

/** PeerPresent flag bits. */
export const PeerPresentFlags = {
  IsRegular: 1 << 0,
  IsMeshPeer: 1 << 1,
  IsProber: 1 << 2,
  NotIdeal: 1 << 3,
} as const;
