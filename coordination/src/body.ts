/**
 * The one bounded request-body reader of the server, for HTTP/1 requests (REST API, web
 * forms) and HTTP/2 streams (the node API on the Noise channel): collects at most `limit`
 * bytes and refuses more without buffering them.
 */
import type { Readable } from "node:stream";
import { ControlError } from "./errors.js";

/**
 * Bytes of request bodies being received, over all streams sharing it, and the most
 * allowed at once: a bound on what stalled or slow uploads can hold in memory.
 */
export interface BodyBudget {
  used: number;
  readonly max: number;
}

/** Options of {@link readBoundedBody}. */
export interface BodyLimits {
  /** Largest accepted body, bytes. */
  limit: number;
  /** The declared Content-Length, if any: refused up front when over the limit. */
  declaredLength?: number | undefined;
  /** A budget shared with other reads (bytes are returned when this read ends, either way). */
  budget?: BodyBudget | undefined;
}

/**
 * Reads a whole body. Rejects with ControlError 413 `body_too_large` past `limit` (the
 * rest is drained and dropped), 503 `server_busy` when `budget` would be exceeded, 499
 * `client_closed` when the stream closes before its end, or the stream's own error.
 */
export function readBoundedBody(stream: Readable, { limit, declaredLength, budget }: BodyLimits): Promise<Buffer> {
  const tooLarge = () => new ControlError("body_too_large", `request body exceeds ${limit} bytes`, 413);
  return new Promise((resolve, reject) => {
    if (declaredLength !== undefined && declaredLength > limit) {
      stream.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      if (budget) budget.used -= size;
      fn();
      chunks.length = 0;
    };
    stream.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (budget) budget.used += chunk.length;
      if (size > limit) {
        stream.resume(); // drain the rest without keeping it
        finish(() => reject(tooLarge()));
        return;
      }
      if (budget && budget.used > budget.max) {
        stream.resume();
        finish(() => reject(new ControlError("server_busy", "too many request bodies in flight; retry later", 503)));
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => finish(() => resolve(Buffer.concat(chunks))));
    stream.on("error", (e) => finish(() => reject(e)));
    stream.on("close", () => finish(() => reject(new ControlError("client_closed", "client closed the request", 499))));
  });
}
