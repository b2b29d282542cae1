/**
 * Small HTTP/2 stream helpers for the node API: bounded body reading and JSON answers.
 */
import { randomUUID } from "node:crypto";
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
 * is 500 (a bug); that and anything else becomes 500
 * `{"error": "internal error", "code": "internal", "requestId": <id>}` — the details go to
 * `log` with the same request id, never to the node.
 * @param newId makes the request id (default: a random UUID).
 */
export function respondError(stream: ServerHttp2Stream, err: unknown, log?: (err: unknown, requestId: string) => void, newId: () => string = randomUUID): void {
  if (err instanceof ControlError && err.status !== 500 && err.status >= 400 && err.status <= 599) {
    if (err.status === 499) {
      if (!stream.destroyed) stream.close();
      return;
    }
    respondJson(stream, err.status, { error: err.message, code: err.code });
    return;
  }
  const requestId = newId();
  log?.(err, requestId);
  respondJson(stream, 500, { error: "internal error", code: "internal", requestId });
}
