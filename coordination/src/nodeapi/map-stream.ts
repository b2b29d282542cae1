/**
 * `POST /machine/map`: authorizes the node, records what it reported, and answers with
 * framed MapResponses (u32 LE length + JSON). With `Stream: true` the response stays open:
 * the full netmap first, then deltas for every relevant change set the backend publishes,
 * and `{"KeepAlive":true}` after `keepAliveMs` of silence when the request asked for them.
 */
import type { ServerHttp2Stream } from "node:http2";
import type { MapRequest, MapResponse, MachineKeyString } from "@lattice/types";
import { encodeMapFrameJson } from "@lattice/controlbase";
import { type NodeJsonCache, encodeMapResponse } from "../mapper/encode.js";
import { MapSession } from "../mapper/session.js";
import type { VersionedChange } from "../mapper/types.js";
import type { NodeBackend, NodeUpdate } from "./backend.js";
import { respondError, respondJson } from "./http.js";
import type { HostinfoGate } from "./hostinfo-gate.js";

/** Timer functions (injected so tests can use a fake clock). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of a map stream. */
export interface MapStreamOptions {
  keepAliveMs: number;
  timers: Timers;
  /** Close a stream whose unsent output exceeds this many bytes (slow reader). */
  maxBufferedBytes: number;
  /**
   * Live streams by node (for close() and counting). A node has at most one: a new
   * stream for the same node ends the previous one (as Tailscale's control does), so a
   * node that reconnected after a network change leaves no ghost stream behind.
   */
  live: Map<number, { close(): void }>;
  /** Shared JSON cache of Node objects (one per server). */
  jsonCache: NodeJsonCache;
  /** Rate limit of Hostinfo changes (absent: every change applies at once). */
  hostinfoGate?: HostinfoGate;
  /** `requestId` is set when the error answered a request with 500 (the id the node got). */
  log?: (err: unknown, requestId?: string) => void;
}

/** What of a MapRequest the backend should persist. */
export function nodeUpdateFrom(req: MapRequest): NodeUpdate | null {
  if (req.ReadOnly) return null;
  const u: NodeUpdate = {};
  if (req.DiscoKey !== undefined) u.discoKey = req.DiscoKey;
  if (req.Endpoints !== undefined) u.endpoints = req.Endpoints;
  if (req.Hostinfo) {
    u.hostinfo = req.Hostinfo;
    const derp = req.Hostinfo.NetInfo?.PreferredDERP;
    if (derp !== undefined) u.homeDERP = derp;
  }
  return Object.keys(u).length > 0 ? u : null;
}

/** Serves one validated map request on `stream`. */
export async function serveMap(
  stream: ServerHttp2Stream,
  machineKey: MachineKeyString,
  req: MapRequest,
  backend: NodeBackend,
  opts: MapStreamOptions,
): Promise<void> {
  let nodeId: number;
  try {
    ({ nodeId } = await backend.authorizeMap(machineKey, req.NodeKey));
    const reported = nodeUpdateFrom(req);
    const update = reported && opts.hostinfoGate ? opts.hostinfoGate.admit(nodeId, reported) : reported;
    if (update) await backend.updateNodeFromMapRequest(nodeId, update);
  } catch (e) {
    respondError(stream, e, opts.log);
    return;
  }
  if (stream.destroyed || stream.closed) return;
  const session = new MapSession(nodeId, { omitPeers: req.OmitPeers === true });

  if (!req.Stream) {
    const full = session.full(backend.netmapState());
    if (!full) {
      respondJson(stream, 404, { error: "node not found", code: "node_not_found" });
      return;
    }
    const frame = encodeMapFrameJson(encodeMapResponse(full, opts.jsonCache));
    stream.respond({ ":status": 200, "content-type": "application/octet-stream", "content-length": frame.length });
    stream.end(frame);
    return;
  }

  // Subscribe before the snapshot so no change set is lost; older ones are ignored by version.
  const pending: VersionedChange[] = [];
  let ready = false;
  let closed = false;
  let seq = 0;
  let keepAliveTimer: unknown = undefined;
  // Online/offline calls are chained so "offline" never overtakes "online".
  let onlineChain: Promise<void> = Promise.resolve();
  let wentOnline = false;

  const close = (): void => {
    if (closed) return;
    closed = true;
    unsubscribe();
    if (keepAliveTimer !== undefined) opts.timers.clearTimeout(keepAliveTimer);
    if (opts.live.get(nodeId) === handle) opts.live.delete(nodeId);
    if (!stream.destroyed) stream.end();
    if (wentOnline) onlineChain = onlineChain.then(() => backend.setOnline(nodeId, false)).catch((e) => opts.log?.(e));
  };
  const handle = { close };

  const armKeepAlive = (): void => {
    if (!req.KeepAlive || closed) return;
    if (keepAliveTimer !== undefined) opts.timers.clearTimeout(keepAliveTimer);
    keepAliveTimer = opts.timers.setTimeout(() => {
      keepAliveTimer = undefined;
      send({ KeepAlive: true });
    }, opts.keepAliveMs);
  };

  const send = (msg: MapResponse): void => {
    if (closed || stream.destroyed) return;
    msg.Seq = ++seq;
    stream.write(encodeMapFrameJson(encodeMapResponse(msg, opts.jsonCache)));
    if (stream.writableLength > opts.maxBufferedBytes) {
      close(); // the client re-requests and gets a fresh full map
      return;
    }
    armKeepAlive();
  };

  const onChange = (change: VersionedChange): void => {
    if (closed) return;
    if (!ready) {
      pending.push(change);
      return;
    }
    try {
      const { response, close: mustClose } = session.delta(change, backend.netmapState());
      if (mustClose) close();
      else if (response) send(response);
    } catch (e) {
      opts.log?.(e);
      close();
    }
  };
  const unsubscribe = backend.subscribe(onChange);
  opts.live.get(nodeId)?.close();
  opts.live.set(nodeId, handle);
  stream.on("close", close);
  stream.on("error", close);

  const full = session.full(backend.netmapState());
  if (!full) {
    unsubscribe();
    if (opts.live.get(nodeId) === handle) opts.live.delete(nodeId);
    closed = true;
    respondJson(stream, 404, { error: "node not found", code: "node_not_found" });
    return;
  }
  stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
  send(full);
  ready = true;
  for (const c of pending.splice(0)) onChange(c);
  if (!closed) {
    wentOnline = true;
    onlineChain = backend.setOnline(nodeId, true).catch((e) => opts.log?.(e));
  }
}
