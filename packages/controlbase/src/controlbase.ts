/**
 * The control channel's base transport (sans-IO): a Noise IK handshake keyed by the
 * node's machine key and the server's static key, then encrypted records. The layout
 * follows Tailscale's ts2021 `controlbase` byte for byte; only the prologue string
 * differs ("Lattice Control Protocol v<N>").
 *
 * Frames (all integers big-endian):
 *
 *   initiation  client→server  101 bytes: version u16 ‖ type 0x01 ‖ len u16 (=96) ‖
 *                              ephemeral 32 ‖ enc(machine static) 48 ‖ tag 16
 *   response    server→client   51 bytes: type 0x02 ‖ len u16 (=48) ‖ ephemeral 32 ‖ tag 16
 *   error       server→client  type 0x03 ‖ len u16 ‖ UTF-8 text (unauthenticated hint)
 *   record      both ways      type 0x04 ‖ len u16 ‖ ChaCha20-Poly1305 ciphertext ‖ tag;
 *                              a whole frame is at most 4096 bytes
 *
 * The prologue mixed into the handshake is the protocol name and the version carried in
 * the initiation header, so both sides agree on it. Transport nonces are 4 zero bytes ‖
 * u64 big-endian counter (as ts2021; the Noise spec says little-endian).
 */
import {
  type InitiatorPending,
  type NoiseKeyPair,
  type NoiseSession,
  CipherState,
  NoiseError,
  TAG_LENGTH,
  concat,
  initiatorStart,
  responderRead,
} from "./noise.js";

/** The control protocol version Lattice speaks. */
export const CONTROL_PROTOCOL_VERSION = 1;
/** Prefix of the prologue; the decimal version follows. */
export const PROLOGUE_PREFIX = "Lattice Control Protocol v";

/** Frame type: handshake initiation. */
export const MSG_TYPE_INITIATION = 1;
/** Frame type: handshake response. */
export const MSG_TYPE_RESPONSE = 2;
/** Frame type: unauthenticated error text. */
export const MSG_TYPE_ERROR = 3;
/** Frame type: encrypted transport record. */
export const MSG_TYPE_RECORD = 4;

/** Header length of response, error and record frames (type u8 ‖ length u16). */
export const HEADER_LENGTH = 3;
/** Header length of the initiation frame (version u16 ‖ type u8 ‖ length u16). */
export const INITIATION_HEADER_LENGTH = 5;
/** Size of the initiation frame. */
export const INITIATION_LENGTH = 101;
/** Size of the response frame. */
export const RESPONSE_LENGTH = 51;
/** Largest frame on the wire (header included). */
export const MAX_MESSAGE_SIZE = 4096;
/** Largest record ciphertext (tag included). */
export const MAX_CIPHERTEXT_SIZE = MAX_MESSAGE_SIZE - HEADER_LENGTH;
/** Largest plaintext carried by one record. */
export const MAX_PLAINTEXT_SIZE = MAX_CIPHERTEXT_SIZE - TAG_LENGTH;

/** The handshake prologue for a protocol version. */
export function controlPrologue(version: number): Uint8Array {
  return new TextEncoder().encode(PROLOGUE_PREFIX + String(version));
}

/**
 * An established channel: seals outgoing bytes into record frames and parses incoming
 * bytes (in arbitrary chunks) into plaintext. After any error it is dead (the caller
 * closes the connection).
 */
export class ControlTransport {
  /** Negotiated protocol version. */
  readonly version: number;
  /** The peer's static public key (client: server key; server: machine key). */
  readonly peerStatic: Uint8Array;
  /** The handshake hash (channel binding). */
  readonly handshakeHash: Uint8Array;
  private readonly tx: CipherState;
  private readonly rx: CipherState;
  private buf: Uint8Array = new Uint8Array(0);
  private dead: NoiseError | null = null;

  /** Wraps a finished Noise session. */
  constructor(session: NoiseSession, version: number) {
    this.tx = session.send;
    this.rx = session.recv;
    this.peerStatic = session.remoteStatic;
    this.handshakeHash = session.handshakeHash;
    this.version = version;
  }

  /** Encrypts `plaintext` into one or more record frames, concatenated. */
  seal(plaintext: Uint8Array): Uint8Array {
    if (this.dead) throw this.dead;
    const frames: Uint8Array[] = [];
    for (let off = 0; off < plaintext.length || (off === 0 && plaintext.length === 0); off += MAX_PLAINTEXT_SIZE) {
      const chunk = plaintext.subarray(off, Math.min(off + MAX_PLAINTEXT_SIZE, plaintext.length));
      const ct = this.tx.encrypt(chunk);
      const frame = new Uint8Array(HEADER_LENGTH + ct.length);
      frame[0] = MSG_TYPE_RECORD;
      frame[1] = ct.length >>> 8;
      frame[2] = ct.length & 0xff;
      frame.set(ct, HEADER_LENGTH);
      frames.push(frame);
      if (plaintext.length === 0) break;
    }
    return frames.length === 1 ? frames[0] : concat(...frames);
  }

  /**
   * Feeds received bytes; returns the plaintext of every complete record (possibly none).
   * Throws NoiseError (wrong frame type, oversized frame, bad tag); the channel is then dead.
   */
  open(bytes: Uint8Array): Uint8Array[] {
    if (this.dead) throw this.dead;
    this.buf = this.buf.length === 0 ? bytes : concat(this.buf, bytes);
    const out: Uint8Array[] = [];
    let off = 0;
    try {
      while (this.buf.length - off >= HEADER_LENGTH) {
        const type = this.buf[off];
        const len = (this.buf[off + 1] << 8) | this.buf[off + 2];
        if (type !== MSG_TYPE_RECORD) throw new NoiseError("ERR_CONTROL_FRAME_TYPE", `unexpected frame type ${type}`);
        if (HEADER_LENGTH + len > MAX_MESSAGE_SIZE) throw new NoiseError("ERR_CONTROL_FRAME_SIZE", `frame of ${HEADER_LENGTH + len} bytes exceeds ${MAX_MESSAGE_SIZE}`);
        if (len < TAG_LENGTH) throw new NoiseError("ERR_CONTROL_FRAME_SIZE", `record of ${len} bytes is shorter than its tag`);
        if (this.buf.length - off < HEADER_LENGTH + len) break;
        const pt = this.rx.decrypt(this.buf.subarray(off + HEADER_LENGTH, off + HEADER_LENGTH + len));
        if (pt.length > 0) out.push(pt);
        off += HEADER_LENGTH + len;
      }
    } catch (e) {
      this.dead = e instanceof NoiseError ? e : new NoiseError("ERR_CONTROL_FRAME", String(e));
      this.buf = new Uint8Array(0);
      throw this.dead;
    }
    this.buf = off === 0 ? this.buf : this.buf.slice(off);
    return out;
  }
}

/** A client handshake in flight: the initiation frame and the continuation. */
export interface ClientHandshake {
  /** The 101-byte initiation frame (sent in the upgrade request's header). */
  readonly initiation: Uint8Array;
  /**
   * Feeds bytes received after the upgrade. Returns null while the response is incomplete,
   * else the transport plus any bytes that followed the response. Throws NoiseError for a
   * server error frame (code ERR_CONTROL_SERVER_ERROR, message = server text) or a bad response.
   */
  receive(bytes: Uint8Array): { transport: ControlTransport; rest: Uint8Array } | null;
}

/** Starts the client side: machine key = our static key, serverPublic = control key. */
export function clientHandshake(opts: {
  machineKey: NoiseKeyPair;
  serverPublic: Uint8Array;
  ephemeral: NoiseKeyPair;
  version?: number;
}): ClientHandshake {
  const version = opts.version ?? CONTROL_PROTOCOL_VERSION;
  const pending: InitiatorPending = initiatorStart({
    prologue: controlPrologue(version),
    localStatic: opts.machineKey,
    localEphemeral: opts.ephemeral,
    remoteStatic: opts.serverPublic,
    endian: "big",
  });
  const payloadLen = pending.message.length; // 32 + 48 + 16 = 96
  const initiation = new Uint8Array(INITIATION_HEADER_LENGTH + payloadLen);
  initiation[0] = version >>> 8;
  initiation[1] = version & 0xff;
  initiation[2] = MSG_TYPE_INITIATION;
  initiation[3] = payloadLen >>> 8;
  initiation[4] = payloadLen & 0xff;
  initiation.set(pending.message, INITIATION_HEADER_LENGTH);
  let buf: Uint8Array = new Uint8Array(0);
  let finished = false;
  return {
    initiation,
    receive(bytes) {
      if (finished) throw new NoiseError("ERR_NOISE_STATE", "handshake already finished");
      buf = concat(buf, bytes);
      if (buf.length < HEADER_LENGTH) return null;
      const type = buf[0];
      const len = (buf[1] << 8) | buf[2];
      if (type === MSG_TYPE_ERROR) {
        if (buf.length < HEADER_LENGTH + len) return null;
        finished = true;
        const text = new TextDecoder().decode(buf.subarray(HEADER_LENGTH, HEADER_LENGTH + len));
        throw new NoiseError("ERR_CONTROL_SERVER_ERROR", `server error: ${text}`);
      }
      if (type !== MSG_TYPE_RESPONSE) {
        finished = true;
        throw new NoiseError("ERR_CONTROL_FRAME_TYPE", `unexpected handshake response type ${type}`);
      }
      if (len !== RESPONSE_LENGTH - HEADER_LENGTH) {
        finished = true;
        throw new NoiseError("ERR_CONTROL_FRAME_SIZE", `wrong handshake response length ${len}`);
      }
      if (buf.length < RESPONSE_LENGTH) return null;
      finished = true;
      const { session } = pending.readResponse(buf.subarray(HEADER_LENGTH, RESPONSE_LENGTH));
      return { transport: new ControlTransport(session, version), rest: buf.slice(RESPONSE_LENGTH) };
    },
  };
}

/** The server side's view of an accepted handshake. */
export interface ServerAccept {
  /** The client's machine public key (authenticated). */
  readonly machinePublic: Uint8Array;
  /** The protocol version from the initiation header. */
  readonly version: number;
  /** The 51-byte response frame to write before any record. */
  readonly response: Uint8Array;
  readonly transport: ControlTransport;
}

/**
 * Validates and answers an initiation frame. Throws NoiseError on any malformation or
 * authentication failure (the caller may send {@link errorFrame} and closes).
 * `supportedVersions` rejects other versions before any DH.
 */
export function serverAccept(opts: {
  serverKey: NoiseKeyPair;
  ephemeral: NoiseKeyPair;
  initiation: Uint8Array;
  supportedVersions?: readonly number[];
}): ServerAccept {
  const init = opts.initiation;
  if (init.length !== INITIATION_LENGTH) throw new NoiseError("ERR_CONTROL_FRAME_SIZE", "wrong handshake initiation size");
  const version = (init[0] << 8) | init[1];
  if (init[2] !== MSG_TYPE_INITIATION) throw new NoiseError("ERR_CONTROL_FRAME_TYPE", "unexpected handshake message type");
  const len = (init[3] << 8) | init[4];
  if (len !== INITIATION_LENGTH - INITIATION_HEADER_LENGTH) throw new NoiseError("ERR_CONTROL_FRAME_SIZE", "wrong handshake initiation length");
  const supported = opts.supportedVersions ?? [CONTROL_PROTOCOL_VERSION];
  if (!supported.includes(version)) throw new NoiseError("ERR_CONTROL_VERSION", `unsupported protocol version ${version}`);
  const pending = responderRead({
    prologue: controlPrologue(version),
    localStatic: opts.serverKey,
    localEphemeral: opts.ephemeral,
    message: init.subarray(INITIATION_HEADER_LENGTH),
    endian: "big",
  });
  if (pending.payload.length !== 0) throw new NoiseError("ERR_CONTROL_FRAME_SIZE", "handshake initiation payload must be empty");
  const { message, session } = pending.respond();
  const response = new Uint8Array(RESPONSE_LENGTH);
  response[0] = MSG_TYPE_RESPONSE;
  response[1] = message.length >>> 8;
  response[2] = message.length & 0xff;
  response.set(message, HEADER_LENGTH);
  return { machinePublic: pending.remoteStatic, version, response, transport: new ControlTransport(session, version) };
}

/** An error frame with `text` (truncated to fit a frame; never echo attacker input). */
export function errorFrame(text: string): Uint8Array {
  const body = new TextEncoder().encode(text).subarray(0, 0xffff);
  const out = new Uint8Array(HEADER_LENGTH + body.length);
  out[0] = MSG_TYPE_ERROR;
  out[1] = body.length >>> 8;
  out[2] = body.length & 0xff;
  out.set(body, HEADER_LENGTH);
  return out;
}
