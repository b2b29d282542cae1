/**
 * The LocalAPI server (docs/localapi.md): HTTP/1.1 + JSON on a unix socket, Tailscale's
 * `/localapi/v0/...` paths. The socket is mode 0666 (anyone may read status); every
 * method but GET needs the caller — read with SO_PEERCRED through @lattice/tun's addon
 * (`peerCred(fd)`, robust against forging and without an FFI dependency) — to be root
 * or the `--operator` user. A Host header other than `local-tailscaled.sock` or
 * `localhost` is refused (DNS rebinding).
 *
 * Limits: 16 KiB of headers, 64 KiB of body (413), 10 s to send the request (Node's
 * requestTimeout/headersTimeout), 32 connections (further ones are closed at once),
 * 5 s keep-alive idle. Every non-2xx answer is `{"error","code"}`; bad input is a 4xx
 * naming the field; an unexpected exception is a logged 500 `internal` with a request id.
 */
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { Socket } from "node:net";
import { LatticedError } from "./errors.js";
import type { LocalBackend } from "./backend.js";

/** Listener limits. */
export interface LocalApiLimits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  /** Time to send a whole request. */
  requestTimeoutMs: number;
  maxConnections: number;
  /** Idle time of a keep-alive connection. */
  keepAliveMs: number;
}

/** Limits (docs/localapi.md). */
export const LOCALAPI_LIMITS: Readonly<LocalApiLimits> = Object.freeze({ maxHeaderBytes: 16 * 1024, maxBodyBytes: 64 * 1024, requestTimeoutMs: 10_000, maxConnections: 32, keepAliveMs: 5_000 });
/** Host headers accepted. */
export const ALLOWED_HOSTS = ["local-tailscaled.sock", "localhost"] as const;
/** Longest ping wait a client may ask for. */
export const MAX_PING_TIMEOUT_MS = 30_000;

/** What the server needs of the backend. */
export type LocalApiBackend = Pick<LocalBackend, "status" | "prefs" | "patchPrefs" | "up" | "down" | "logout" | "ping" | "netcheck" | "whois" | "bugreport" | "dnsStatus" | "suggestExitNode">;

/** Options of {@link LocalApiServer.listen}. */
export interface LocalApiOptions {
  socketPath: string;
  backend: LocalApiBackend;
  version: string;
  /** Prometheus text for /metrics. */
  metrics: () => string;
  /** The uid allowed to write besides root (--operator), or null. */
  operatorUid: number | null;
  /** SO_PEERCRED uid of a connected socket (throws when unavailable). */
  peerUid: (socket: Socket) => number;
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
  random: (n: number) => Uint8Array;
  /** Overrides of {@link LOCALAPI_LIMITS} (tests use short timeouts). */
  limits?: Partial<LocalApiLimits>;
}

/** Counters of the LocalAPI listener. */
export interface LocalApiStats {
  requests: number;
  errors: Record<string, number>;
  rejectedConnections: number;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body) + "\n");
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": data.length });
  res.end(data);
}

/** Reads the body up to the limit; 413 beyond it. */
function readBody(req: http.IncomingMessage, max: number = LOCALAPI_LIMITS.maxBodyBytes): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > max) return Promise.reject(Object.assign(new LatticedError("bad_request", `body: at most ${max} bytes (Content-Length ${declared})`), { httpStatus: 413 }));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.removeAllListeners("data");
        req.resume();
        reject(Object.assign(new LatticedError("bad_request", `body: at most ${max} bytes`), { httpStatus: 413 }));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function readJson(req: http.IncomingMessage, emptyAs: unknown, max: number): Promise<unknown> {
  const b = await readBody(req, max);
  if (b.length === 0) return emptyAs;
  try {
    return JSON.parse(b.toString("utf8"));
  } catch (e) {
    throw new LatticedError("bad_request", `body: not valid JSON: ${(e as Error).message}`);
  }
}

type Handler = (req: http.IncomingMessage, url: URL) => Promise<{ status?: number; json?: unknown; text?: string; contentType?: string }>;

/** The running LocalAPI server. */
export class LocalApiServer {
  readonly stats: LocalApiStats = { requests: 0, errors: {}, rejectedConnections: 0 };
  readonly #sockets = new Set<Socket>();

  private constructor(
    private readonly server: http.Server,
    private readonly o: LocalApiOptions,
  ) {}

  /**
   * Listens on `socketPath`: creates its directory (0755) if needed, replaces a stale
   * socket file (only a socket: any other file there is an error), chmod 0666.
   */
  static async listen(o: LocalApiOptions): Promise<LocalApiServer> {
    fs.mkdirSync(path.dirname(o.socketPath), { recursive: true, mode: 0o755 });
    try {
      const st = fs.lstatSync(o.socketPath);
      if (!st.isSocket()) throw new LatticedError("bad_args", `--socket ${o.socketPath}: exists and is not a socket`);
      fs.rmSync(o.socketPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const lim = { ...LOCALAPI_LIMITS, ...o.limits };
    const server = http.createServer({
      maxHeaderSize: lim.maxHeaderBytes,
      requestTimeout: lim.requestTimeoutMs,
      headersTimeout: lim.requestTimeoutMs,
      keepAliveTimeout: lim.keepAliveMs,
      // Node checks the request timeouts on this interval (default 30 s).
      connectionsCheckingInterval: Math.min(1_000, lim.requestTimeoutMs),
    });
    const api = new LocalApiServer(server, o);
    server.maxConnections = lim.maxConnections;
    server.on("drop", () => api.stats.rejectedConnections++);
    server.on("connection", (s: Socket) => {
      api.#sockets.add(s);
      s.on("close", () => api.#sockets.delete(s));
    });
    server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      api.#count(err.code === "HPE_HEADER_OVERFLOW" ? "headers_too_large" : "bad_http");
      if (socket.writable) {
        const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
        const body = JSON.stringify({ error: `bad HTTP request: ${err.code ?? err.message}`, code: status === 408 ? "timeout" : "bad_request" });
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      } else socket.destroy();
    });
    server.on("request", (req, res) => void api.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(o.socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
    fs.chmodSync(o.socketPath, 0o666);
    return api;
  }

  get #maxBody(): number {
    return this.o.limits?.maxBodyBytes ?? LOCALAPI_LIMITS.maxBodyBytes;
  }

  #count(code: string): void {
    this.stats.errors[code] = (this.stats.errors[code] ?? 0) + 1;
  }

  #routes(): Record<string, Partial<Record<string, Handler>>> {
    const b = this.o.backend;
    return {
      "/localapi/v0/status": { GET: async (_r, u) => ({ json: b.status(u.searchParams.get("peers") !== "false") }) },
      "/localapi/v0/dns-status": { GET: async () => ({ json: b.dnsStatus() }) },
      "/localapi/v0/prefs": {
        GET: async () => ({ json: b.prefs() }),
        PATCH: async (r) => ({ json: await b.patchPrefs(await readJson(r, null, this.#maxBody)) }),
      },
      "/localapi/v0/up": { POST: async (r) => ({ json: await b.up(await readJson(r, {}, this.#maxBody)) }) },
      "/localapi/v0/down": {
        POST: async (r) => {
          await readBody(r, this.#maxBody);
          await b.down();
          return { json: {} };
        },
      },
      "/localapi/v0/logout": {
        POST: async (r) => {
          await readBody(r, this.#maxBody);
          await b.logout();
          return { json: {} };
        },
      },
      "/localapi/v0/ping": {
        GET: async (_r, u) => {
          const ip = u.searchParams.get("ip");
          if (!ip) throw new LatticedError("bad_request", "ip: query parameter required (?ip=100.x.y.z)");
          const typeRaw = u.searchParams.get("type") ?? "disco";
          const type = ({ disco: "disco", tsmp: "TSMP", icmp: "ICMP" } as const)[typeRaw.toLowerCase() as "disco" | "tsmp" | "icmp"];
          if (!type) throw new LatticedError("bad_request", `type: disco, TSMP or ICMP (got ${JSON.stringify(typeRaw.slice(0, 40))})`);
          const tRaw = u.searchParams.get("timeout");
          let timeout = 5_000;
          if (tRaw !== null) {
            if (!/^\d{1,6}$/.test(tRaw) || Number(tRaw) < 1 || Number(tRaw) > MAX_PING_TIMEOUT_MS) throw new LatticedError("bad_request", `timeout: milliseconds 1..${MAX_PING_TIMEOUT_MS} (got ${JSON.stringify(tRaw.slice(0, 40))})`);
            timeout = Number(tRaw);
          }
          return { json: await b.ping(ip, type, timeout) };
        },
      },
      "/localapi/v0/netcheck": { GET: async () => ({ json: await b.netcheck() }) },
      "/localapi/v0/suggest-exit-node": { GET: async () => ({ json: b.suggestExitNode() }) },
      "/localapi/v0/whois": {
        GET: async (_r, u) => {
          const addr = u.searchParams.get("addr");
          if (!addr) throw new LatticedError("bad_request", "addr: query parameter required (IP, IP:port or nodekey:hex)");
          return { json: b.whois(addr) };
        },
      },
      "/localapi/v0/bugreport": { GET: async (_r, u) => ({ text: b.bugreport(u.searchParams.get("note") ?? "") + "\n" }) },
      "/localapi/v0/version": { GET: async () => ({ json: { Version: this.o.version, Daemon: "latticed" } }) },
      "/localapi/v0/metrics": { GET: async () => ({ text: this.o.metrics(), contentType: "text/plain; version=0.0.4" }) },
    };
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.stats.requests++;
    const fail = (e: LatticedError, status = e.status): void => {
      this.#count(e.code);
      if (!res.headersSent) sendJson(res, status, { error: e.message, code: e.code });
      else res.destroy();
    };
    try {
      const host = (req.headers.host ?? "").replace(/:\d+$/, "");
      if (!(ALLOWED_HOSTS as readonly string[]).includes(host)) {
        return fail(new LatticedError("forbidden", `Host header must be ${ALLOWED_HOSTS.join(" or ")} (got ${JSON.stringify(host.slice(0, 64))})`));
      }
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://localhost");
      } catch {
        return fail(new LatticedError("bad_request", "request target is not a valid path"));
      }
      const route = this.#routes()[url.pathname];
      if (!route) return fail(new LatticedError("not_found", `no such endpoint: ${url.pathname.slice(0, 100)}`));
      const method = req.method ?? "";
      const h = route[method];
      if (!h) {
        res.setHeader("Allow", Object.keys(route).join(", "));
        return fail(new LatticedError("method_not_allowed", `${method.slice(0, 16)} not allowed on ${url.pathname} (allowed: ${Object.keys(route).join(", ")})`));
      }
      if (method !== "GET") {
        let uid: number;
        try {
          uid = this.o.peerUid(req.socket);
        } catch (e) {
          return fail(new LatticedError("forbidden", `cannot tell who is calling (SO_PEERCRED: ${(e as Error).message})`));
        }
        if (uid !== 0 && uid !== this.o.operatorUid) {
          return fail(new LatticedError("forbidden", `${method} ${url.pathname} needs root or the operator user (caller uid ${uid}); run with sudo or start latticed with --operator`));
        }
      }
      const out = await h(req, url);
      if (res.headersSent || res.destroyed) return;
      if (out.text !== undefined) {
        const data = Buffer.from(out.text);
        res.writeHead(out.status ?? 200, { "Content-Type": out.contentType ?? "text/plain; charset=utf-8", "Content-Length": data.length });
        res.end(data);
      } else sendJson(res, out.status ?? 200, out.json ?? {});
    } catch (e) {
      if (e instanceof LatticedError) return fail(e, (e as { httpStatus?: number }).httpStatus ?? e.status);
      const id = Buffer.from(this.o.random(6)).toString("hex");
      this.o.log.error({ requestId: id, err: (e as Error).stack ?? String(e) }, "LocalAPI internal error");
      fail(new LatticedError("internal", `internal error (request id ${id})`));
    }
  }

  /** Stops listening, closes connections, removes the socket file. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    fs.rmSync(this.o.socketPath, { force: true });
  }
}

/** SO_PEERCRED uid of a unix socket connection, through @lattice/tun's addon. */
export function peerUidFrom(peerCred: (fd: number) => { uid: number }): (s: Socket) => number {
  return (s) => {
    const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== "number" || fd < 0) throw new Error("socket has no file descriptor");
    return peerCred(fd).uid;
  };
}
