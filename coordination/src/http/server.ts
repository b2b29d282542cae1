/**
 * The HTTP(S) listener (web pages, REST API with Bearer API keys, node API upgrade) and
 * the admin unix socket (REST API without keys: access is limited by the socket file's
 * mode 0600 and its directory's 0700, i.e. root or the server's own user).
 *
 * Node cannot read the peer uid of a unix socket connection (no SO_PEERCRED API), so
 * the file permissions are the only check; keep the socket's directory private.
 *
 * Both listeners take their timeouts and connection caps from one {@link ListenerLimits}
 * (./limits.ts); every upgrade request that no handler claims is answered 400 and closed.
 */
import http from "node:http";
import https from "node:https";
import { chmodSync } from "node:fs";
import type { Control } from "../app.js";
import { describeSystemError, StartupError, UnauthorizedError } from "../errors.js";
import { claimSocketPath } from "../startup/socket.js";
import { createApiHandler, SOCKET_ACTOR } from "./api.js";
import { SELF_SIGNED_SETTING } from "../tls.js";
import { sendError, sendJson } from "./json.js";
import { createWebHandler } from "./web.js";
import { createConsoleHandler } from "../console/index.js";
import type { OidcLogin } from "./oidc.js";
import type { LoginThrottleOptions } from "./login-throttle.js";
import { requestUrl } from "./decode.js";
import type { ApiPrincipal } from "../services/apikeys.js";
import type { AuditActor } from "../services/audit.js";
import type { ServerMetrics } from "./metrics.js";
import { loginName } from "@lattice/policy";
import {
  DEFAULT_LISTENER_LIMITS,
  guardListener,
  httpServerOptions,
  newListenerCounters,
  type ListenerCounters,
  type ListenerLimits,
  type UpgradeHandler,
} from "./limits.js";

/** Logger subset used by the servers. */
export interface HttpLog {
  error(obj: unknown, msg?: string): void;
  warn?(obj: unknown, msg?: string): void;
}

function limitsLog(log: HttpLog) {
  return log.warn ? { warn: (o: unknown, m?: string) => log.warn!(o, m) } : undefined;
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
  /** Timeouts and connection caps (default {@link DEFAULT_LISTENER_LIMITS}). */
  limits?: ListenerLimits | undefined;
  /** Where refusals are counted (default: a fresh set). */
  counters?: ListenerCounters | undefined;
  /**
   * Upgrade handlers (e.g. the node API's control channel), tried in order; an upgrade
   * none claims is answered 400 and closed. The array may be filled after creation.
   */
  upgradeHandlers?: UpgradeHandler[] | undefined;
  /** Failed-login throttling (defaults: see login-throttle.ts). */
  loginThrottle?: Partial<LoginThrottleOptions> | undefined;
  /** Prometheus metrics: served at `GET /metrics` (API key required) and fed HTTP status counts. */
  metrics?: ServerMetrics | undefined;
}

/**
 * `GET /health`: 200 `{"ok":true}`, or 503 `{"ok":false,"error":{code,message},"policy":{…}}`
 * while the stored policy does not compile for the tailnet (every node is cut off then).
 */
function sendHealth(res: http.ServerResponse, control: Control): void {
  const h = control.policies.health();
  if (h.ok) return sendJson(res, 200, { ok: true });
  sendJson(res, 503, { ok: false, error: { code: h.code, message: h.message }, policy: { version: h.version, since: h.since } });
}

/**
 * `GET /healthz`: 200 `{"ok":true,"database":"ok"}` when the process runs and the database
 * answers a query; 503 `{"ok":false,"database":"<error>"}` otherwise. For load balancers and
 * monitoring (the policy health is `GET /health`).
 */
async function sendHealthz(res: http.ServerResponse, control: Control): Promise<void> {
  try {
    await control.db.kysely.selectFrom("settings").select("key").limit(1).execute();
    sendJson(res, 200, { ok: true, database: "ok" });
  } catch (e) {
    sendJson(res, 503, { ok: false, database: (e as Error).message });
  }
}

/**
 * The API key of a REST request: `Authorization: Bearer KEY`, or HTTP Basic with the key as
 * the user name and an empty password (`curl -u KEY:`), as Tailscale's API accepts.
 * @throws {UnauthorizedError} when neither is present.
 */
export function apiKeyOf(req: http.IncomingMessage): string {
  const auth = String(req.headers.authorization ?? "");
  const bearer = /^Bearer\s+(\S+)$/i.exec(auth);
  if (bearer) return bearer[1]!;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(auth);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
    const user = decoded.split(":")[0] ?? "";
    if (user !== "") return user;
  }
  throw new UnauthorizedError("missing Authorization: Bearer <API key> (or Basic with the key as user name)");
}

/** Who a REST request acts as, for the audit log: the key's user, else `api-key <prefix>`. */
async function apiActor(control: Control, caller: ApiPrincipal, key: string, req: http.IncomingMessage): Promise<AuditActor> {
  const source = req.socket.remoteAddress ?? "unknown";
  if (caller.userId != null) {
    const u = await control.db.kysely.selectFrom("users").select(["name", "email"]).where("id", "=", caller.userId).executeTakeFirst();
    if (u) return { actor: loginName(u), userId: caller.userId, source };
  }
  const prefix = /^lapi-([0-9a-f]+)-/.exec(key)?.[1] ?? "?";
  return { actor: `api-key ${prefix}`, userId: null, source };
}

/** Creates the public HTTP(S) server (not yet listening). */
export function createMainServer(control: Control, opts: MainServerOptions): http.Server {
  const api = createApiHandler(control);
  const web = createWebHandler(control, { secureCookies: !!opts.tls, oidc: opts.oidc, loginThrottle: opts.loginThrottle });
  const adminConsole = createConsoleHandler(control);
  const limits = opts.limits ?? DEFAULT_LISTENER_LIMITS;
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const metrics = opts.metrics;
    if (metrics) res.once("finish", () => metrics.httpResponses.inc({ code: String(res.statusCode) }));
    try {
      for (const h of opts.preHandlers ?? []) if (h(req, res)) return;
      const url = requestUrl(req);
      if (url.pathname === "/metrics" && metrics && (req.method === "GET" || req.method === "HEAD")) {
        await control.apiKeys.verify(apiKeyOf(req));
        const m = await metrics.render();
        res.writeHead(200, { "content-type": m.type, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : m.body);
        return;
      }
      if (url.pathname === "/health") return sendHealth(res, control);
      if (url.pathname === "/healthz") return await sendHealthz(res, control);
      if (url.pathname === "/api/v1/openapi.json" && req.method === "GET") {
        // The API's description is public, as Tailscale's is.
        if (await api(req, res, url.pathname)) return;
      }
      if (url.pathname.startsWith("/api/")) {
        const key = apiKeyOf(req);
        const caller = await control.apiKeys.verify(key); // 401 bad key, 403 key of a non-admin
        if (await api(req, res, url.pathname, caller, await apiActor(control, caller, key, req))) return;
      }
      if (await adminConsole(req, res, url)) return;
      if (await web(req, res, url)) return;
      sendJson(res, 404, { error: { code: "not_found", message: `no such page: ${url.pathname}` } });
    } catch (e) {
      sendError(res, e, (err, requestId) => opts.log.error({ err, requestId }, "request failed"));
    }
  };
  const serverOpts = httpServerOptions(limits);
  const server = opts.tls
    ? https.createServer({ ...serverOpts, cert: opts.tls.cert, key: opts.tls.key }, (q, s) => void handler(q, s))
    : http.createServer(serverOpts, (q, s) => void handler(q, s));
  guardListener(server as http.Server, {
    limits,
    counters: opts.counters ?? newListenerCounters(),
    upgradeHandlers: opts.upgradeHandlers,
    log: limitsLog(opts.log),
    name: opts.tls ? "https" : "http",
  });
  return server as http.Server;
}

/** Options of {@link listenAdminSocket}. */
export interface AdminSocketOptions {
  /** Timeouts and connection caps (default {@link DEFAULT_LISTENER_LIMITS}). */
  limits?: ListenerLimits | undefined;
  /** Where refusals are counted (default: a fresh set). */
  counters?: ListenerCounters | undefined;
  /** `GET /api/v1/tls` (admin socket only): the served certificate's fingerprint (null: plain HTTP). */
  tls?: (() => { selfSigned: boolean; fingerprint: string } | null) | undefined;
  /** The body of `GET /metrics` (JSON): counters of refused and cut-off input. */
  metrics?: (() => unknown) | undefined;
}

/**
 * Creates the admin API server on the unix socket `path` (mode 0600) and starts listening;
 * a stale socket file is taken over, a live one refused (startup/socket.ts). Besides the
 * REST API it serves `GET /health` and `GET /metrics` (see {@link AdminSocketOptions}).
 * @throws {StartupError} `socket_in_use` / `socket_unavailable` naming `--socket` and the path.
 */
export async function listenAdminSocket(control: Control, path: string, log: HttpLog, opts: AdminSocketOptions = {}): Promise<http.Server> {
  const api = createApiHandler(control);
  const limits = opts.limits ?? DEFAULT_LISTENER_LIMITS;
  const server = http.createServer(httpServerOptions(limits), (req, res) => {
    void (async () => {
      try {
        const url = requestUrl(req, "http://admin");
        if (url.pathname === "/health") return sendHealth(res, control);
        if (url.pathname === "/metrics" && opts.metrics && (req.method === "GET" || req.method === "HEAD")) return sendJson(res, 200, opts.metrics());
        if (url.pathname === "/api/v1/tls" && req.method === "GET") return sendJson(res, 200, { tls: opts.tls?.() ?? null });
        if (url.pathname === "/api/v1/tls/rotate" && req.method === "POST") {
          const had = await control.db.kysely.deleteFrom("settings").where("key", "=", SELF_SIGNED_SETTING).executeTakeFirst();
          const rotated = Number(had.numDeletedRows) > 0;
          if (rotated) await control.audit.record(SOCKET_ACTOR, "tls.rotate", "self-signed certificate");
          return sendJson(res, 200, { rotated });
        }
        if (await api(req, res, url.pathname)) return;
        sendJson(res, 404, { error: { code: "not_found", message: `no such path: ${url.pathname}` } });
      } catch (e) {
        sendError(res, e, (err, requestId) => log.error({ err, requestId }, "admin request failed"));
      }
    })();
  });
  guardListener(server, { limits, counters: opts.counters ?? newListenerCounters(), log: limitsLog(log), name: "admin" });
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
