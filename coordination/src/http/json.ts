/** HTTP helpers: bounded body reading, JSON replies, errors as {error: {code, message}}, zod validation. */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { readBoundedBody } from "../body.js";
import { ControlError, ValidationError } from "../errors.js";

/** Largest accepted request body (1 MiB). */
export const MAX_BODY_BYTES = 1 << 20;

/** Reads a request body, answering 413 (via the thrown error) when it exceeds `limit`. */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  return readBoundedBody(req, { limit, declaredLength: Number.isFinite(declared) ? declared : undefined });
}

/** Parses a JSON body and validates it with a zod schema; 400 naming the field on failure. */
export async function readJson<T extends z.ZodType>(req: IncomingMessage, schema: T): Promise<z.infer<T>> {
  const body = await readBody(req);
  let value: unknown;
  const text = body.toString("utf8");
  try {
    value = text.trim() === "" ? {} : JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`body is not valid JSON: ${(e as Error).message}`, "bad_json");
  }
  return validate(schema, value);
}

/** Validates a value; throws ValidationError whose message names the offending field. */
export function validate<T extends z.ZodType>(schema: T, value: unknown, where = "body"): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ValidationError(formatZodError(r.error, where), r.error.issues.some((i) => i.code === "unrecognized_keys") ? "unknown_field" : "invalid_input");
}

/** One readable line per zod issue, e.g. `body.tags[0]: expected string` or `unknown field "foo"`. */
export function formatZodError(err: z.ZodError, where = "body"): string {
  return err.issues
    .map((i) => {
      const path = [where, ...i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))].join("").replace(/^(\w+)\./, "$1.");
      if (i.code === "unrecognized_keys") return `${path}: unknown field${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => JSON.stringify(k)).join(", ")}`;
      return `${path}: ${i.message}`;
    })
    .join("; ");
}

/** Sends a JSON reply. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": data.length, "cache-control": "no-store" });
  res.end(data);
}

/**
 * Sends an error as `{error: {code, message}}`. A ControlError with a 4xx (or deliberate
 * 501-599) status keeps its code and message. Status 500 — a bug — and anything that is not
 * a ControlError answer a fixed body that leaks nothing:
 * `{error: {code: "internal", message: "internal server error (request id <id>)", requestId: <id>}}`,
 * and the real error goes to `log` with the same id, so an operator can find it.
 * @param newId makes the request id (default: a random UUID).
 */
export function sendError(res: ServerResponse, e: unknown, log?: (e: unknown, requestId: string) => void, newId: () => string = randomUUID): void {
  if (res.headersSent) {
    log?.(e, newId());
    res.destroy();
    return;
  }
  if (e instanceof ControlError && e.status !== 500 && e.status >= 400 && e.status <= 599) {
    sendJson(res, e.status, { error: { code: e.code, message: e.message } });
    return;
  }
  const requestId = newId();
  log?.(e, requestId);
  sendJson(res, 500, { error: { code: "internal", message: `internal server error (request id ${requestId})`, requestId } });
}
