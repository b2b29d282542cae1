/**
 * Wiring of the node-facing API onto the server's HTTP listener:
 *
 * - `GET /key?v=N` (plain HTTP/HTTPS): the server's Noise public key, as tailcfg's
 *   OverTLSPublicKeyResponse `{"legacyPublicKey":"mkey:000…","publicKey":"mkey:…"}`.
 * - `POST /ts2021` with `Upgrade: lattice-control-protocol` (see ../noise/upgrade.ts):
 *   Noise IK channel, HTTP/2 inside, serving
 *   - `POST /machine/register` — RegisterRequest JSON → RegisterResponse JSON
 *   - `POST /machine/map` — MapRequest JSON → framed MapResponses (long-poll when Stream)
 *   - `GET /machine/ssh/action/<srcNodeID>/to/<dstNodeID>?local_user=<user>` and
 *     `GET /machine/ssh/check/<id>/wait` — SSH check mode (ssh-routes.ts)
 *
 * Errors on the inner requests are JSON `{"error": message, "code": code}` with a 4xx/5xx
 * status. Malformed frames or handshakes close that connection and are counted.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { ServerHttp2Session, ServerHttp2Stream, IncomingHttpHeaders } from "node:http2";
import type { Duplex } from "node:stream";
import { type NoiseKeyPair } from "@lattice/controlbase";
import { formatKey, type MachineKeyString, type OverTLSPublicKeyResponse } from "@lattice/types";
import { acceptControlUpgrade, isControlUpgrade, newNoiseCounters, type NoiseCounters } from "../noise/upgrade.js";
import { serveControlH2, type ControlH2Counters } from "../noise/h2.js";
import { NodeJsonCache } from "../mapper/encode.js";
import type { NodeBackend } from "./backend.js";
import { readBody, respondError, respondJson, type BodyBudget } from "./http.js";
import { serveMap, type Timers } from "./map-stream.js";
import { ControlError } from "../errors.js";
import { checkHostinfoSize, parseJsonBody, validateMapRequest, validateRegisterRequest } from "./validate.js";
import { HostinfoGate, type HostinfoGateCounters } from "./hostinfo-gate.js";
import { sourceKey } from "../source-key.js";
import { isSshPath, serveSsh } from "./ssh-routes.js";

/** Options of {@link attachNodeApi}. */
export interface NodeApiOptions {
  /** The server's persistent Noise static key pair (machine-key type). */
  serverKey: NoiseKeyPair;
  /** Randomness (ephemeral keys). Default: node:crypto randomBytes. */
  random?: (n: number) => Uint8Array;
  /** Keep-alive interval on idle map streams, ms (default 60 000). */
  keepAliveMs?: number;
  /** Largest accepted `/machine/map` request body, bytes (default 256 KiB). */
  maxBodyBytes?: number;
  /**
   * Largest accepted `/machine/register` body, bytes (default 32 KiB): registrations come
   * from machines nobody has let in yet and may be stored while a person logs in.
   */
  maxRegisterBodyBytes?: number;
  /** Largest accepted Hostinfo (its JSON), bytes, in any request (default 16 KiB); 413 hostinfo_too_large beyond it. */
  maxHostinfoBytes?: number;
  /** After a burst of 3, minimum time between two applied Hostinfo changes of one node, ms (default 5 000; see hostinfo-gate.ts). */
  hostinfoMinIntervalMs?: number;
  /** Current time, ms (default Date.now). */
  now?: () => number;
  /** Request body bytes being received at once over all channels (default 64 MiB; 503 beyond). */
  maxBodyBytesInFlight?: number;
  /** Close map streams whose unsent output exceeds this (default 32 MiB). */
  maxBufferedBytes?: number;
  /** Close control connections without an active request this long, ms (default 5 min; stalled request bodies count as idle). */
  idleTimeoutMs?: number;
  /** A control-channel request body must be complete within this, ms (default 30 s). */
  bodyTimeoutMs?: number;
  /** Concurrent HTTP/2 streams per control connection (default 16). */
  maxStreamsPerConnection?: number;
  /** How long a refused upgrade's peer may take to read the answer, ms (default 5000). */
  refuseGraceMs?: number;
  /** Timers (default: the global ones). */
  timers?: Timers;
  /** Where unexpected errors are reported (never sent to nodes). */
  /** `requestId` is set when the error answered a request with 500 (the id the node got). */
  log?: (err: unknown, requestId?: string) => void;
}

/** Counters of the node API (hostile input, traffic). */
export interface NodeApiCounters extends NoiseCounters, ControlH2Counters {
  /** Inner requests refused with a 4xx. */
  badRequests: number;
  /** Map streams opened so far. */
  streamsOpened: number;
  /** Requests refused over a limit (HTTP 413/429), by error code. */
  limited: Record<string, number>;
  /** Hostinfo changes held back by the rate limit, and held ones applied later. */
  hostinfo: HostinfoGateCounters;
}

/** A node API attached to a server. */
export interface NodeApi {
  readonly counters: NodeApiCounters;
  /** The server's Noise public key as "mkey:hex". */
  readonly publicKey: MachineKeyString;
  /**
   * Serves `GET /key`; returns false (doing nothing) for any other request, so the
   * server's own request handler can call it first.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /** Handles a control upgrade; returns false (doing nothing) for other upgrades. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Number of open map streams. */
  activeStreams(): number;
  /** Request body bytes being received right now, over all channels. */
  bodyBytesInFlight(): number;
  /** Closes every stream and channel and detaches from the server. */
  close(): void;
}

/**
 * Attaches the node API to `server`: listens for `upgrade` events addressed to the
 * control protocol (other upgrades, e.g. DERP, are left to other listeners). The caller
 * routes `GET /key` by calling `handleRequest` from its request handler.
 */
export function attachNodeApi(server: HttpServer | HttpsServer | null, backend: NodeBackend, opts: NodeApiOptions): NodeApi {
  const random = opts.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const timers: Timers = opts.timers ?? {
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  };
  const maxBody = opts.maxBodyBytes ?? 256 * 1024;
  const bodyBudget: BodyBudget = { used: 0, max: opts.maxBodyBytesInFlight ?? 64 * 1024 * 1024 };
  const maxRegisterBody = opts.maxRegisterBodyBytes ?? 32 * 1024;
  const maxHostinfo = opts.maxHostinfoBytes ?? 16 * 1024;
  const hostinfoGate = new HostinfoGate({
    minIntervalMs: opts.hostinfoMinIntervalMs ?? 5_000,
    now: opts.now ?? Date.now,
    timers,
    apply: (nodeId, update) => backend.updateNodeFromMapRequest(nodeId, update),
    // A node deleted while its change was held: nothing to do.
    log: (err) => (err instanceof ControlError && err.status !== 500 ? undefined : opts.log?.(err)),
  });
  const counters: NodeApiCounters = { ...newNoiseCounters(), stalledStreams: 0, idleChannelsClosed: 0, channelErrors: 0, badRequests: 0, streamsOpened: 0, limited: {}, hostinfo: hostinfoGate.counters };
  const live = new Map<number, { close(): void }>();
  const jsonCache = new NodeJsonCache();
  const sessions = new Set<ServerHttp2Session>();
  const publicKey = formatKey("machine", opts.serverKey.publicKey);
  const log = opts.log;

  const fail = (stream: ServerHttp2Stream, e: unknown): void => {
    if (e instanceof ControlError && e.status !== 500) {
      counters.badRequests++;
      if (e.status === 413 || e.status === 429) counters.limited[e.code] = (counters.limited[e.code] ?? 0) + 1;
    }
    respondError(stream, e, log);
  };

  const route = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, machinePublic: Uint8Array, source: string): void => {
    const mkey = formatKey("machine", machinePublic);
    const method = headers[":method"];
    const path = String(headers[":path"] ?? "").split("?")[0];
    if (isSshPath(path)) {
      serveSsh(stream, headers, mkey, backend, { budget: bodyBudget, fail: (e) => fail(stream, e) });
      return;
    }
    if (path !== "/machine/register" && path !== "/machine/map") {
      counters.badRequests++;
      respondJson(stream, 404, { error: `no such endpoint ${path.slice(0, 64)}`, code: "not_found" });
      return;
    }
    if (method !== "POST") {
      counters.badRequests++;
      respondJson(stream, 405, { error: `${path} requires POST`, code: "method_not_allowed" });
      return;
    }
    void (async () => {
      try {
        const register = path === "/machine/register";
        const body = parseJsonBody(await readBody(stream, register ? maxRegisterBody : maxBody, bodyBudget));
        if (register) {
          const req = validateRegisterRequest(body);
          checkHostinfoSize(req.Hostinfo, maxHostinfo);
          const ac = new AbortController();
          stream.on("close", () => ac.abort());
          const resp = await backend.register(mkey, req, ac.signal, { source });
          respondJson(stream, 200, resp);
        } else {
          const req = validateMapRequest(body);
          checkHostinfoSize(req.Hostinfo, maxHostinfo);
          if (req.Stream) counters.streamsOpened++;
          await serveMap(stream, mkey, req, backend, {
            keepAliveMs: opts.keepAliveMs ?? 60_000,
            timers,
            maxBufferedBytes: opts.maxBufferedBytes ?? 32 * 1024 * 1024,
            live,
            jsonCache,
            hostinfoGate,
            log,
          });
        }
      } catch (e) {
        fail(stream, e);
      }
    })();
  };

  const api: NodeApi = {
    counters,
    publicKey,
    handleRequest(req, res) {
      const path = (req.url ?? "").split("?")[0];
      if (path !== "/key") return false;
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { "content-type": "text/plain" }).end("use GET\n");
        return true;
      }
      const body: OverTLSPublicKeyResponse = { legacyPublicKey: formatKey("machine", new Uint8Array(32)), publicKey };
      const data = JSON.stringify(body);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(data) }).end(req.method === "HEAD" ? undefined : data);
      return true;
    },
    handleUpgrade(req, socket, head) {
      if (!isControlUpgrade(req)) return false;
      const conn = acceptControlUpgrade(req, socket, head, { serverKey: opts.serverKey, random, counters, refuseGraceMs: opts.refuseGraceMs });
      if (!conn) return true;
      conn.on("error", () => {});
      const source = sourceKey(req.socket.remoteAddress);
      const session = serveControlH2(conn, (stream, headers, machinePublic) => route(stream, headers, machinePublic, source), {
        idleTimeoutMs: opts.idleTimeoutMs,
        bodyTimeoutMs: opts.bodyTimeoutMs,
        maxConcurrentStreams: opts.maxStreamsPerConnection,
        counters,
        timers,
      });
      sessions.add(session);
      session.on("close", () => sessions.delete(session));
      return true;
    },
    activeStreams() {
      return live.size;
    },
    bodyBytesInFlight() {
      return bodyBudget.used;
    },
    close() {
      server?.off("upgrade", onUpgrade);
      for (const s of [...live.values()]) s.close();
      for (const s of [...sessions]) s.destroy();
      hostinfoGate.close();
    },
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    api.handleUpgrade(req, socket, head);
  };
  server?.on("upgrade", onUpgrade);
  return api;
}
