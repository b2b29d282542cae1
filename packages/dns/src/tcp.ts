/**
 * DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): every message is preceded by its
 * length as a 2-byte big-endian integer; a connection carries any number of messages in
 * both directions. Sans-IO: {@link TcpFramer} takes the bytes a socket delivered, in
 * whatever pieces, and returns the complete messages; {@link frameMessage} prefixes one.
 *
 * Hostile input: a length over the framer's `maxMessage` (or 0) is a protocol error —
 * the framer says so once and takes nothing more (the caller closes the connection); the
 * buffered, incomplete tail is never more than one message, so memory per connection is
 * bounded by `maxMessage + 2`.
 */

/** Why a TCP DNS stream was given up. */
export type TcpFrameError = "too_big" | "empty";

/** Result of {@link TcpFramer.push}. */
export interface TcpFrames {
  /** Complete messages, in order (copies; the caller may keep them). */
  messages: Uint8Array[];
  /** Set once the stream broke the framing rules; no messages follow after it. */
  error: TcpFrameError | null;
}

/** Splits a TCP byte stream into DNS messages (see the file comment). */
export class TcpFramer {
  #buf: Uint8Array = new Uint8Array(0);
  #error: TcpFrameError | null = null;

  /** `maxMessage`: the largest message accepted, bytes (1..65535). */
  constructor(readonly maxMessage: number) {
    if (!Number.isInteger(maxMessage) || maxMessage < 1 || maxMessage > 65535) throw new RangeError(`maxMessage: 1..65535 (got ${maxMessage})`);
  }

  /** Bytes buffered of an incomplete message (length prefix included). */
  get buffered(): number {
    return this.#buf.length;
  }

  /** Adds `chunk`; returns the messages it completed. Never throws. */
  push(chunk: Uint8Array): TcpFrames {
    if (this.#error) return { messages: [], error: this.#error };
    let buf: Uint8Array;
    if (this.#buf.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.#buf.length + chunk.length);
      buf.set(this.#buf, 0);
      buf.set(chunk, this.#buf.length);
    }
    const messages: Uint8Array[] = [];
    let off = 0;
    while (buf.length - off >= 2) {
      const len = (buf[off]! << 8) | buf[off + 1]!;
      if (len === 0 || len > this.maxMessage) {
        this.#error = len === 0 ? "empty" : "too_big";
        this.#buf = new Uint8Array(0);
        return { messages, error: this.#error };
      }
      if (buf.length - off - 2 < len) break;
      messages.push(buf.slice(off + 2, off + 2 + len));
      off += 2 + len;
    }
    this.#buf = buf.slice(off);
    return { messages, error: null };
  }
}

/** `msg` with its 2-byte length prefix. Throws RangeError for an empty message or one over 65 535 bytes. */
export function frameMessage(msg: Uint8Array): Uint8Array {
  if (msg.length === 0 || msg.length > 65535) throw new RangeError(`tcp dns message: 1..65535 bytes (got ${msg.length})`);
  const out = new Uint8Array(msg.length + 2);
  out[0] = msg.length >> 8;
  out[1] = msg.length & 0xff;
  out.set(msg, 2);
  return out;
}
