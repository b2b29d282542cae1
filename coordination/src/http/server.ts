/**
 * The HTTP(S) listener (web pages, REST API with Bearer API keys, node API upgrade) and
 * the admin unix socket (REST API without keys: access is limited by the socket file's
 * mode 0600 and its directory's 0700, i.e. root or the server's own user).
 *
 * Node cannot read the peer uid of a unix socket connection (no SO_PEERCRED API), so
 * the file permissions are the only check; keep the socket's directory private.
 */
import http from "node:http";
import https from "node:https";
import { chmodSync } from "node:fs";
import type { Control } from "../app.js";
import { describeSystemError, StartupError, UnauthorizedError } from "../errors.js";
import { claimSocketPath } from "../startup/socket.js";
import { createApiHandler } from "./api.js";
import { sendError, sendJson } from "./json.js";
import { createWebHandler } from "./web.js";
import type { OidcLogin } from "./oidc.js";

/** Logger subset used by the servers. */
export interface HttpLog {
  error(obj: unknown, msg?: string): void;
}

/** Options for {@link createMainServer}. */
export interface MainServerOptions {
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  log: HttpLog;
  /**
   * Handlers tried before the server's own routes (e.g. the node API's `GET /key`);
   * each returns true when it answered. The array may be filled after creation.
   */
  preHandlers?: Array<(req: http.IncomingMessage, res: http.ServerResponse) => boolean>;
  /** OIDC web login, when configured. */
  oidc?: OidcLogin | null | undefined;
}

/** Creates the public HTTP(S) server (not yet listening). */
export function createMainServer(control: Control, opts: MainServerOptions): http.Server {
  const api = createApiHandler(control);
  const web = createWebHandler(control, { secureCookies: !!opts.tls, oidc: opts.oidc });
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    try {
      for (const h of opts.preHandlers ?? []) if (h(req, res)) return;
      const url = new URL(req.url ?? "/", "http://localhost");
      if (url.pathname === "/health") return sendJson(res, 200, { ok: true });
      if (url.pathname.startsWith("/api/")) {
        const auth = String(req.headers.authorization ?? "");
        const m = /^Bearer\s+(\S+)$/i.exec(auth);
        if (!m) throw new UnauthorizedError("missing Authorization: Bearer <API key>");
        await control.apiKeys.verify(m[1]!);
        if (await api(req, res, url.pathname)) return;
      }
      if (await web(req, res, url)) return;
      sendJson(res, 404, { error: { code: "not_found", message: `no such page: ${url.pathname}` } });
    } catch (e) {
      sendError(res, e, (err) => opts.log.error({ err }, "request failed"));
    }
  };
  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, (q, s) => void handler(q, s))
    : http.createServer((q, s) => void handler(q, s));
  server.requestTimeout = 60_000;
  server.headersTimeout = 30_000;
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  return server as http.Server;
}

/**
 * Creates the admin API server on the unix socket `path` (mode 0600) and starts listening;
 * a stale socket file is taken over, a live one refused (startup/socket.ts).
 * @throws {StartupError} `socket_in_use` / `socket_unavailable` naming `--socket` and the path.
 */
export async function listenAdminSocket(control: Control, path: string, log: HttpLog): Promise<http.Server> {
  const api = createApiHandler(control);
  const server = http.createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? "/", "http://admin");
        if (url.pathname === "/health") return sendJson(res, 200, { ok: true });
        if (await api(req, res, url.pathname)) return;
        sendJson(res, 404, { error: { code: "not_found", message: `no such path: ${url.pathname}` } });
      } catch (e) {
        sendError(res, e, (err) => log.error({ err }, "admin request failed"));
      }
    })();
  });
  await claimSocketPath(path);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(new StartupError("socket_unavailable", "--socket", path, `cannot listen: ${describeSystemError(e)}`)));
    const old = process.umask(0o177);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(old);
    }
  });
  chmodSync(path, 0o600);
  return server;
}
