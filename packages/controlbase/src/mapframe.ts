/**
 * Framing of MapResponses on a `/machine/map` response body, as Tailscale frames them:
 * each message is a u32 little-endian byte length followed by that many bytes of JSON
 * (uncompressed; Lattice does not offer zstd yet, so MapRequest.Compress must be "").
 */

/** Default cap on one framed message (a full netmap of a large tailnet fits easily). */
export const DEFAULT_MAX_MAP_MESSAGE = 64 * 1024 * 1024;

/** A malformed map stream (oversized frame, bad JSON); `code` is stable. */
export class MapFrameError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  /** Creates a framing error. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "MapFrameError";
    this.code = code;
  }
}

/** Frames one message: u32 LE length ‖ UTF-8 JSON. */
export function encodeMapFrame(message: unknown): Buffer {
  return encodeMapFrameJson(JSON.stringify(message));
}

/** Frames already-serialized JSON text. */
export function encodeMapFrameJson(text: string): Buffer {
  const json = Buffer.from(text, "utf8");
  const out = Buffer.allocUnsafe(4 + json.length);
  out.writeUInt32LE(json.length, 0);
  json.copy(out, 4);
  return out;
}

/** Incremental decoder: feed body chunks, get parsed messages. */
export class MapFrameDecoder {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly max: number;

  /** `maxMessage`: refuse frames longer than this many bytes. */
  constructor(maxMessage = DEFAULT_MAX_MAP_MESSAGE) {
    this.max = maxMessage;
  }

  /** Feeds bytes; returns every complete message. Throws MapFrameError on a bad frame. */
  push(chunk: Uint8Array): unknown[] {
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.size += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.size < 4) break;
      const head = this.peek(4);
      const len = head.readUInt32LE(0);
      if (len > this.max) throw new MapFrameError("ERR_MAP_FRAME_SIZE", `map message of ${len} bytes exceeds ${this.max}`);
      if (this.size < 4 + len) break;
      const all = this.take(4 + len);
      try {
        out.push(JSON.parse(all.toString("utf8", 4)));
      } catch {
        throw new MapFrameError("ERR_MAP_FRAME_JSON", "map message is not valid JSON");
      }
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    return all.subarray(0, n);
  }
}
