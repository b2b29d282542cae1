/**
 * Small HTTP/2 stream helpers for the node API: bounded body reading and JSON answers.
 */
import type { ServerHttp2Stream } from "node:http2";
import { RequestError } from "./validate.js";
import { NodeBackendError } from "./backend.js";

/**
 * Bytes of request bodies being received, over all streams of all channels, and the
 * most allowed at once: a bound on what stalled or slow uploads can hold in memory.
 */
export interface BodyBudget {
  used: number;
  readonly max: number;
}

/**
 * Reads a request body of at most `limit` bytes; RequestError(413) beyond it, and
 * RequestError(503, "server_busy") when `budget` (shared by all streams) would be
 * exceeded. The bytes are returned to the budget when the read ends either way.
 */
export function readBody(stream: ServerHttp2Stream, limit: number, budget?: BodyBudget): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = () => {
      done = true;
      if (budget) budget.used -= size;
      chunks.length = 0;
    };
    stream.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (budget) budget.used += chunk.length;
      if (size > limit) {
        finish();
        reject(new RequestError(413, "body_too_large", `request body exceeds ${limit} bytes`));
        return;
      }
      if (budget && budget.used > budget.max) {
        finish();
        reject(new RequestError(503, "server_busy", "too many request bodies in flight; retry later"));
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => {
      if (done) return;
      const body = Buffer.concat(chunks);
      finish();
      resolve(body);
    });
    stream.on("close", () => {
      if (done) return;
      finish();
      reject(new RequestError(499, "client_closed", "client closed the request"));
    });
  });
}

/** Answers with a JSON body (if the stream can still respond). */
export function respondJson(stream: ServerHttp2Stream, status: number, body: unknown): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  const data = Buffer.from(JSON.stringify(body));
  stream.respond({ ":status": status, "content-type": "application/json", "content-length": data.length });
  stream.end(data);
}

/**
 * Answers an error: RequestError/NodeBackendError keep their status, code and message;
 * anything else becomes 500 "internal error" (details go to `log`, not the node).
 */
export function respondError(stream: ServerHttp2Stream, err: unknown, log?: (err: unknown) => void): void {
  if (err instanceof RequestError || err instanceof NodeBackendError) {
    if (err.status === 499) {
      if (!stream.destroyed) stream.close();
      return;
    }
    respondJson(stream, err.status, { error: err.message, code: err.code });
    return;
  }
  log?.(err);
  respondJson(stream, 500, { error: "internal error", code: "internal" });
}
