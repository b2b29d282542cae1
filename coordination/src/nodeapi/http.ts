/**
 * Small HTTP/2 stream helpers for the node API: bounded body reading and JSON answers.
 */
import type { ServerHttp2Stream } from "node:http2";
import { readBoundedBody, type BodyBudget } from "../body.js";
import { ControlError } from "../errors.js";

export type { BodyBudget } from "../body.js";

/**
 * Reads a request body of at most `limit` bytes (413 `body_too_large` beyond it), within
 * the shared `budget` (503 `server_busy`); see ../body.ts.
 */
export function readBody(stream: ServerHttp2Stream, limit: number, budget?: BodyBudget): Promise<Buffer> {
  return readBoundedBody(stream, { limit, budget });
}

/** Answers with a JSON body (if the stream can still respond). */
export function respondJson(stream: ServerHttp2Stream, status: number, body: unknown): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  const data = Buffer.from(JSON.stringify(body));
  stream.respond({ ":status": status, "content-type": "application/json", "content-length": data.length });
  stream.end(data);
}

/**
 * Answers an error: a ControlError keeps its status, code and message unless its status
 * is 500 (a bug); that and anything else becomes 500 "internal error" (details go to
 * `log`, not the node).
 */
export function respondError(stream: ServerHttp2Stream, err: unknown, log?: (err: unknown) => void): void {
  if (err instanceof ControlError && err.status !== 500) {
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
