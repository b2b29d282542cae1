/**
 * Listener limits: the one place every listener of `lattice-control` (the HTTP or HTTPS
 * listener, the admin unix socket, and the HTTP/2-over-Noise control channel) takes its
 * timeouts, size and count limits from, and the counters of what they refused.
 *
 * - {@link resolveListenerLimits} reads the `serve` settings (config file / env; see
 *   coordination/README.md "Listener limits").
 * - {@link httpServerOptions} gives the node:http(s) constructor options (header, request
 *   and keep-alive timeouts; TLS handshake timeout; header size).
 * - {@link guardListener} applies the rest to a created server: total and per-source
 *   connection caps, an answer for malformed requests and timeouts, and an answer for
 *   every upgrade (or CONNECT) that no handler claims — a refused socket is always
 *   answered and closed, never left open.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { isIP } from "node:net";
import { z } from "zod";
import { ValidationError } from "../errors.js";
import { parseDuration } from "../duration.js";
import { CONTROL_UPGRADE_PATH, CONTROL_UPGRADE_PROTOCOL } from "@lattice/controlbase";
import { refuseSocket } from "./refuse.js";

/** Timeouts (ms) and limits of the listeners. */
export interface ListenerLimits {
  /** Request headers (and, on HTTPS, the TLS handshake) must arrive within this (default 10 s). */
  headerTimeoutMs: number;
  /** A whole HTTP/1.1 request, body included, must arrive within this (default 60 s). */
  requestTimeoutMs: number;
  /** An HTTP/1.1 keep-alive connection idle between requests is closed after this (default 30 s). */
  idleTimeoutMs: number;
  /** Open connections allowed from one source (IPv4 address, IPv6 /64; unix socket = one source) (default 128). */
  maxConnectionsPerAddress: number;
  /** Open connections allowed per listener in total (default 16384). */
  maxConnections: number;
  /** A control channel with no active request (stalled request bodies count as idle) is closed after this (default 5 min). */
  controlIdleTimeoutMs: number;
  /** A control-channel request body must be complete within this after the stream opens (default 30 s). */
  bodyTimeoutMs: number;
  /** Concurrent HTTP/2 streams per control channel (default 16; SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxStreamsPerConnection: number;
}

/** Defaults of {@link ListenerLimits} (documented in coordination/README.md). */
export const DEFAULT_LISTENER_LIMITS: Readonly<ListenerLimits> = Object.freeze({
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 30_000,
  maxConnectionsPerAddress: 128,
  maxConnections: 16_384,
  controlIdleTimeoutMs: 5 * 60_000,
  bodyTimeoutMs: 30_000,
  maxStreamsPerConnection: 16,
});

const count = z.union([z.number(), z.string()]);
/** Config-file keys of the listener limits (durations as strings: "10s", "5m"). */
export const LimitsFileSchema = z.strictObject({
  headerTimeout: z.string().optional(),
  requestTimeout: z.string().optional(),
  idleTimeout: z.string().optional(),
  controlIdleTimeout: z.string().optional(),
  bodyTimeout: z.string().optional(),
  maxConnectionsPerAddress: count.optional(),
  maxConnections: count.optional(),
  maxStreamsPerConnection: count.optional(),
});
/** Raw limit settings as written in a config file or the environment. */
export type RawLimits = z.infer<typeof LimitsFileSchema>;

/** Environment variable → config key of the listener limits. */
export const LIMIT_ENV_VARS: Record<string, keyof RawLimits> = {
  LATTICE_CONTROL_HEADER_TIMEOUT: "headerTimeout",
  LATTICE_CONTROL_REQUEST_TIMEOUT: "requestTimeout",
  LATTICE_CONTROL_IDLE_TIMEOUT: "idleTimeout",
  LATTICE_CONTROL_CONTROL_IDLE_TIMEOUT: "controlIdleTimeout",
  LATTICE_CONTROL_BODY_TIMEOUT: "bodyTimeout",
  LATTICE_CONTROL_MAX_CONNECTIONS_PER_ADDRESS: "maxConnectionsPerAddress",
  LATTICE_CONTROL_MAX_CONNECTIONS: "maxConnections",
  LATTICE_CONTROL_MAX_STREAMS_PER_CONNECTION: "maxStreamsPerConnection",
};

function positiveInt(v: number | string | undefined, field: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  const n = typeof v === "number" ? v : /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ValidationError(`${field}: ${JSON.stringify(v)} is not a whole number from 1 to ${max}`);
  return n;
}

function positiveDuration(v: string | undefined, field: string, dflt: number): number {
  if (v === undefined) return dflt;
  const ms = parseDuration(v, field);
  if (ms < 1) throw new ValidationError(`${field}: ${JSON.stringify(v)} must be longer than 0`);
  return ms;
}

/**
 * Resolves the limits from raw settings (unset = default). Throws ValidationError naming
 * the key for a bad value, or when headerTimeout exceeds requestTimeout.
 */
export function resolveListenerLimits(raw: RawLimits): ListenerLimits {
  const d = DEFAULT_LISTENER_LIMITS;
  const l: ListenerLimits = {
    headerTimeoutMs: positiveDuration(raw.headerTimeout, "headerTimeout", d.headerTimeoutMs),
    requestTimeoutMs: positiveDuration(raw.requestTimeout, "requestTimeout", d.requestTimeoutMs),
    idleTimeoutMs: positiveDuration(raw.idleTimeout, "idleTimeout", d.idleTimeoutMs),
    controlIdleTimeoutMs: positiveDuration(raw.controlIdleTimeout, "controlIdleTimeout", d.controlIdleTimeoutMs),
    bodyTimeoutMs: positiveDuration(raw.bodyTimeout, "bodyTimeout", d.bodyTimeoutMs),
    maxConnectionsPerAddress: positiveInt(raw.maxConnectionsPerAddress, "maxConnectionsPerAddress", d.maxConnectionsPerAddress, 1_000_000),
    maxConnections: positiveInt(raw.maxConnections, "maxConnections", d.maxConnections, 10_000_000),
    maxStreamsPerConnection: positiveInt(raw.maxStreamsPerConnection, "maxStreamsPerConnection", d.maxStreamsPerConnection, 1000),
  };
  if (l.headerTimeoutMs > l.requestTimeoutMs) {
    throw new ValidationError(`headerTimeout (${raw.headerTimeout ?? "10s"}) must not exceed requestTimeout (${raw.requestTimeout ?? "60s"})`);
  }
  return l;
}

/**
 * What the HTTP(S) and admin listeners refused or cut off, since start (exposed at the admin
 * socket's `/metrics`; the control channel's own counters are the node API's).
 */
export interface ListenerCounters {
  /** Connections closed at accept: over the per-source or the total cap. */
  connectionsRefused: number;
  /** Upgrade or CONNECT requests no handler claimed (answered 400/405 and closed). */
  upgradesRefused: number;
  /** Connections cut off by the header, request or TLS handshake timeout. */
  timeouts: number;
  /** Malformed HTTP/1.1 requests (answered 400/431 and closed) and failed TLS handshakes. */
  clientErrors: number;
}

/** Fresh zeroed counters. */
export function newListenerCounters(): ListenerCounters {
  return { connectionsRefused: 0, upgradesRefused: 0, timeouts: 0, clientErrors: 0 };
}

/** node:http / node:https server constructor options for the limits. */
export function httpServerOptions(l: ListenerLimits): http.ServerOptions & { handshakeTimeout: number } {
  return {
    headersTimeout: l.headerTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.idleTimeoutMs,
    // How often node checks the header/request timeouts: a fraction of the shortest one.
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(l.headerTimeoutMs / 4))),
    maxHeaderSize: 16 * 1024,
    handshakeTimeout: l.headerTimeoutMs,
  };
}

/**
 * The source a connection counts against for the per-source cap: the IPv4 address
 * (IPv4-mapped IPv6 included), the /64 of an IPv6 address, or "local" (unix socket).
 */
export function sourceKey(remoteAddress: string | undefined): string {
  if (!remoteAddress) return "local";
  const a = remoteAddress.startsWith("::ffff:") && isIP(remoteAddress.slice(7)) === 4 ? remoteAddress.slice(7) : remoteAddress;
  if (isIP(a) !== 6) return a;
  // Expand "::" and keep the first four groups.
  const [head, tail] = a.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(":")}::/64`;
}

/** An upgrade handler: returns true when it took the socket. */
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => boolean;

/** Logger subset for refusals (one line per kind per minute). */
export interface LimitsLog {
  warn(obj: unknown, msg?: string): void;
}

/** Options of {@link guardListener}. */
export interface GuardOptions {
  limits: ListenerLimits;
  counters: ListenerCounters;
  /** Tried in order for every upgrade request; none claiming it → 400 and close. */
  upgradeHandlers?: UpgradeHandler[];
  log?: LimitsLog | undefined;
  /** Name in log lines ("http", "admin"). */
  name: string;
  /** Clock for the log rate limit (default Date.now). */
  now?: () => number;
}

const STATUS_TEXT: Record<number, string> = { 400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout", 431: "Request Header Fields Too Large" };

/**
 * Applies the limits to `server` (created with {@link httpServerOptions}): connection
 * caps (total: node's `maxConnections` and its `drop` event; per source: closed at
 * accept), answers for malformed requests, timeouts, and unclaimed upgrades/CONNECTs.
 */
export function guardListener(server: http.Server, o: GuardOptions): void {
  const { limits, counters } = o;
  const now = o.now ?? Date.now;
  const lastLog = new Map<string, number>();
  const note = (kind: string, detail: Record<string, unknown>) => {
    if (!o.log) return;
    const t = now();
    if (t - (lastLog.get(kind) ?? -Infinity) < 60_000) return;
    lastLog.set(kind, t);
    o.log.warn({ listener: o.name, kind, ...detail, counters: { ...counters } }, `${o.name} listener refused a connection (${kind}); further ones are counted, logged at most once a minute`);
  };
  server.requestTimeout = limits.requestTimeoutMs;
  server.headersTimeout = limits.headerTimeoutMs;
  server.keepAliveTimeout = limits.idleTimeoutMs;
  // Inactivity on an HTTP/1.1 socket (e.g. a client that stops reading our answer).
  server.timeout = limits.requestTimeoutMs;
  server.maxConnections = limits.maxConnections;
  server.on("drop", () => {
    counters.connectionsRefused++;
    note("total connection cap", { max: limits.maxConnections });
  });
  const perSource = new Map<string, number>();
  server.prependListener("connection", (socket: Duplex & { remoteAddress?: string }) => {
    const key = sourceKey(socket.remoteAddress);
    const n = perSource.get(key) ?? 0;
    if (n >= limits.maxConnectionsPerAddress) {
      counters.connectionsRefused++;
      note("per-source connection cap", { source: key, max: limits.maxConnectionsPerAddress });
      socket.destroy();
      return;
    }
    perSource.set(key, n + 1);
    socket.once("close", () => {
      const left = (perSource.get(key) ?? 1) - 1;
      if (left <= 0) perSource.delete(key);
      else perSource.set(key, left);
    });
  });
  server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
    const timeout = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
    if (timeout) counters.timeouts++;
    else if (err.code !== "ECONNRESET") counters.clientErrors++;
    if (!socket.writable || err.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const status = timeout ? 408 : err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
    refuseSocket(socket, status, STATUS_TEXT[status]!, timeout ? "request timed out" : "malformed request", limits.headerTimeoutMs);
  });
  server.on("tlsClientError", (err: Error & { code?: string }, socket: Duplex) => {
    if (err.code === "ERR_TLS_HANDSHAKE_TIMEOUT") counters.timeouts++;
    else counters.clientErrors++;
    socket.destroy();
  });
  const handlers = o.upgradeHandlers ?? [];
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    for (const h of handlers) if (h(req, socket, head)) return;
    counters.upgradesRefused++;
    note("unsupported upgrade", {});
    socket.on("error", () => {});
    refuseSocket(socket, 400, STATUS_TEXT[400]!, `unsupported upgrade: this server upgrades only POST ${CONTROL_UPGRADE_PATH} to ${CONTROL_UPGRADE_PROTOCOL} (and GET /derp to DERP when its relay is on)`, limits.headerTimeoutMs);
  });
  server.on("connect", (_req: http.IncomingMessage, socket: Duplex) => {
    counters.upgradesRefused++;
    note("CONNECT", {});
    socket.on("error", () => {});
    refuseSocket(socket, 405, STATUS_TEXT[405]!, "CONNECT is not supported", limits.headerTimeoutMs);
  });
}
