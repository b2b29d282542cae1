/**
 * DERP frame codec, sans-IO. Encoders build whole frames (header + payload); the
 * {@link FrameDecoder} turns an arbitrary byte stream into frames with a hard size limit.
 * Layouts follow Tailscale's derp/derp.go (see constants.ts).
 */
import { FRAME_HEADER_LEN, FrameType, KEY_LEN, MAGIC, MAX_PACKET_SIZE, PING_LEN } from "./constants.js";
import { DerpEncodeError, DerpProtocolError } from "./errors.js";

/** One decoded frame; `payload` is owned by the caller. */
export interface Frame {
  readonly type: number;
  readonly payload: Uint8Array;
}

/** Builds a frame: type ‖ BE uint32 length ‖ the concatenated parts. */
export function encodeFrame(type: number, ...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(FRAME_HEADER_LEN + n);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, n);
  let o = FRAME_HEADER_LEN;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function key(what: string, k: Uint8Array): Uint8Array {
  if (k.length !== KEY_LEN) throw new DerpEncodeError(`${what} must be ${KEY_LEN} bytes, got ${k.length}`);
  return k;
}

function packet(p: Uint8Array): Uint8Array {
  if (p.length > MAX_PACKET_SIZE) throw new DerpEncodeError(`packet of ${p.length} bytes exceeds DERP's ${MAX_PACKET_SIZE}`);
  return p;
}

function ping8(d: Uint8Array): Uint8Array {
  if (d.length !== PING_LEN) throw new DerpEncodeError(`ping data must be ${PING_LEN} bytes, got ${d.length}`);
  return d;
}

/** ServerKey: magic ‖ server public key. */
export const encodeServerKey = (serverPublic: Uint8Array): Uint8Array => encodeFrame(FrameType.ServerKey, MAGIC, key("server key", serverPublic));
/** SendPacket: destination key ‖ packet (≤ 64 KiB). */
export const encodeSendPacket = (dst: Uint8Array, pkt: Uint8Array): Uint8Array => encodeFrame(FrameType.SendPacket, key("destination key", dst), packet(pkt));
/** RecvPacket (v2): source key ‖ packet. */
export const encodeRecvPacket = (src: Uint8Array, pkt: Uint8Array): Uint8Array => encodeFrame(FrameType.RecvPacket, key("source key", src), packet(pkt));
/** ForwardPacket (mesh): source key ‖ destination key ‖ packet. */
export const encodeForwardPacket = (src: Uint8Array, dst: Uint8Array, pkt: Uint8Array): Uint8Array =>
  encodeFrame(FrameType.ForwardPacket, key("source key", src), key("destination key", dst), packet(pkt));
/** KeepAlive: empty. */
export const encodeKeepAlive = (): Uint8Array => encodeFrame(FrameType.KeepAlive);
/** NotePreferred: one byte, 1 when this relay is the client's home. */
export const encodeNotePreferred = (preferred: boolean): Uint8Array => encodeFrame(FrameType.NotePreferred, Uint8Array.of(preferred ? 1 : 0));
/** PeerGone: peer key ‖ reason byte. */
export const encodePeerGone = (peer: Uint8Array, reason: number): Uint8Array => encodeFrame(FrameType.PeerGone, key("peer key", peer), Uint8Array.of(reason & 0xff));
/** WatchConns: empty (mesh key required). */
export const encodeWatchConns = (): Uint8Array => encodeFrame(FrameType.WatchConns);
/** ClosePeer: peer key (mesh key required). */
export const encodeClosePeer = (peer: Uint8Array): Uint8Array => encodeFrame(FrameType.ClosePeer, key("peer key", peer));
/** Ping: 8 bytes. */
export const encodePing = (data: Uint8Array): Uint8Array => encodeFrame(FrameType.Ping, ping8(data));
/** Pong: the 8 bytes of the ping answered. */
export const encodePong = (data: Uint8Array): Uint8Array => encodeFrame(FrameType.Pong, ping8(data));
/** Health: UTF-8 problem text; empty clears the problem. */
export const encodeHealth = (problem: string): Uint8Array => encodeFrame(FrameType.Health, new TextEncoder().encode(problem));

/** Restarting: reconnect after `reconnectInMs`, keep trying for `tryForMs` (both BE uint32 ms). */
export function encodeRestarting(reconnectInMs: number, tryForMs: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, Math.max(0, Math.min(0xffffffff, Math.floor(reconnectInMs))));
  v.setUint32(4, Math.max(0, Math.min(0xffffffff, Math.floor(tryForMs))));
  return encodeFrame(FrameType.Restarting, b);
}

/**
 * PeerPresent: key ‖ 16-byte IP (IPv4 as ::ffff:a.b.c.d) ‖ BE port ‖ flags (51 bytes, derpserver's
 * peerPresentFrameLen; derp.go's comment says 41, the code sends 51). `ip16` must be 16 bytes.
 */
export function encodePeerPresent(peer: Uint8Array, ip16: Uint8Array, port: number, flags: number): Uint8Array {
  if (ip16.length !== 16) throw new DerpEncodeError(`PeerPresent IP must be 16 bytes, got ${ip16.length}`);
  const tail = new Uint8Array(19);
  tail.set(ip16, 0);
  tail[16] = (port >>> 8) & 0xff;
  tail[17] = port & 0xff;
  tail[18] = flags & 0xff;
  return encodeFrame(FrameType.PeerPresent, key("peer key", peer), tail);
}

/** Outcome of feeding bytes to a decoder. */
export type DecodeResult = { readonly ok: true; readonly frames: Frame[] } | { readonly ok: false; readonly error: DerpProtocolError };

/**
 * Incremental frame decoder with a maximum payload length. Feed chunks of any size with
 * {@link push}; it returns every complete frame. A header announcing more than
 * `maxFrameLen` is an error and the decoder stays failed (the connection must close).
 * Buffered bytes never exceed `maxFrameLen + FRAME_HEADER_LEN` plus one pushed chunk.
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private failed: DerpProtocolError | null = null;

  constructor(readonly maxFrameLen: number) {}

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Appends `chunk` and returns the frames it completes, or the terminal error. */
  push(chunk: Uint8Array): DecodeResult {
    if (this.failed) return { ok: false, error: this.failed };
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.buffered >= FRAME_HEADER_LEN) {
      const hdr = this.peek(FRAME_HEADER_LEN);
      const len = ((hdr[1]! << 24) | (hdr[2]! << 16) | (hdr[3]! << 8) | hdr[4]!) >>> 0;
      if (len > this.maxFrameLen) {
        this.failed = new DerpProtocolError("ERR_DERP_FRAME_TOO_LARGE", `frame type 0x${hdr[0]!.toString(16)} announces ${len} bytes, limit ${this.maxFrameLen}`);
        this.chunks = [];
        this.buffered = 0;
        return { ok: false, error: this.failed };
      }
      if (this.buffered < FRAME_HEADER_LEN + len) break;
      const all = this.take(FRAME_HEADER_LEN + len);
      frames.push({ type: all[0]!, payload: all.subarray(FRAME_HEADER_LEN) });
    }
    return { ok: true, frames };
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (o === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}
