/**
 * The I/O edge of the control channel: a Node Duplex stream of plaintext over an
 * underlying byte stream (a TCP/TLS socket after the HTTP upgrade), using a
 * {@link ControlTransport} for framing and encryption. HTTP/2 runs on top of it.
 */
import { Duplex } from "node:stream";
import type { ControlTransport } from "./controlbase.js";
import { NoiseError } from "./noise.js";

/** Options of {@link NoiseDuplex}. */
export interface NoiseDuplexOptions {
  /** Bytes that arrived on the socket after the handshake and belong to the record stream. */
  initial?: Uint8Array;
  /** Called once when a malformed or unauthenticated frame kills the channel. */
  onProtocolError?: (err: NoiseError) => void;
}

/**
 * A plaintext Duplex over an encrypted socket. A malformed record destroys both this
 * stream and the socket (with the NoiseError) — nothing is thrown into the event loop.
 */
export class NoiseDuplex extends Duplex {
  /** The established transport (peer static key, version, handshake hash). */
  readonly transport: ControlTransport;
  private readonly socket: Duplex;
  private readonly onProtocolError: ((err: NoiseError) => void) | undefined;

  /** Wraps `socket`; takes ownership of it (it is destroyed with this stream). */
  constructor(socket: Duplex, transport: ControlTransport, opts: NoiseDuplexOptions = {}) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.transport = transport;
    this.onProtocolError = opts.onProtocolError;
    socket.on("data", (chunk: Buffer) => this.ingest(chunk));
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
    if (opts.initial && opts.initial.length > 0) {
      const initial = opts.initial;
      queueMicrotask(() => this.ingest(initial));
    }
  }

  private ingest(chunk: Uint8Array): void {
    if (this.destroyed) return;
    let plaintexts: Uint8Array[];
    try {
      plaintexts = this.transport.open(chunk);
    } catch (e) {
      const err = e instanceof NoiseError ? e : new NoiseError("ERR_CONTROL_FRAME", String(e));
      this.onProtocolError?.(err);
      this.destroy(err);
      return;
    }
    for (const pt of plaintexts) {
      if (!this.push(Buffer.from(pt.buffer, pt.byteOffset, pt.length))) this.socket.pause();
    }
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let frames: Uint8Array;
    try {
      frames = this.transport.seal(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    this.socket.write(frames, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }

  /** Socket-like no-ops HTTP/2 may call on its transport. */
  setNoDelay(): this {
    return this;
  }
  /** Socket-like no-op. */
  setKeepAlive(): this {
    return this;
  }
  /** Socket-like no-op (timeouts are handled by the caller). */
  setTimeout(): this {
    return this;
  }
}
