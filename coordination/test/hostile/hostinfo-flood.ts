/**
 * Hostile client: an approved node pushing a new, large Hostinfo with every map request
 * (issue 6 A14), as lite map updates (`Stream: false, OmitPeers: true`, the request a
 * Tailscale client sends when its Hostinfo or endpoints change). Every request differs
 * from the previous one (a counter in `OSVersion` and in a peer-visible SSH host key),
 * so a server without a rate limit stores and re-sends each to every peer.
 */
import { ControlError, type ControlClient } from "@lattice/control-client";
import type { DiscoKeyString, MapRequest, NodeKeyString } from "@lattice/types";
import { paddedHostinfo } from "./registration-flood.js";

/** A registered, approved node to flood from. */
export interface FloodingNode {
  client: ControlClient;
  nodeKey: NodeKeyString;
  discoKey?: DiscoKeyString;
  hostname: string;
}

/** Options of {@link hostinfoFlood}. */
export interface HostinfoFloodOptions {
  /** Stop after this many requests (default: until `signal` aborts). */
  requests?: number;
  signal?: AbortSignal;
  /** Approximate Hostinfo JSON size per request, bytes (default 1 KiB). */
  hostinfoBytes?: number;
}

/** What a flood achieved. */
export interface HostinfoFloodResult {
  sent: number;
  /** Requests answered 200. */
  accepted: number;
  /** Refusals by error code (e.g. hostinfo_too_large). */
  refused: Record<string, number>;
  transportErrors: number;
  /** The `OSVersion` marker of the last accepted request ("flood-<n>"). */
  lastAccepted?: string;
}

/** The i-th flood Hostinfo: padded, with a marker a peer can see (sshHostKeys) and one it cannot (OSVersion). */
export function floodHostinfo(hostname: string, i: number, bytes: number): MapRequest["Hostinfo"] {
  const h = paddedHostinfo(hostname, bytes);
  h.OSVersion = `flood-${i}`;
  h.sshHostKeys = [`ssh-ed25519 AAAAflood${i}`];
  return h;
}

/** Sends lite map updates with ever-changing Hostinfo, one at a time. */
export async function hostinfoFlood(node: FloodingNode, opts: HostinfoFloodOptions): Promise<HostinfoFloodResult> {
  const r: HostinfoFloodResult = { sent: 0, accepted: 0, refused: {}, transportErrors: 0 };
  const bytes = opts.hostinfoBytes ?? 1024;
  for (let i = 0; !opts.signal?.aborted && (opts.requests === undefined || i < opts.requests); i++) {
    const req: MapRequest = {
      Version: 100,
      NodeKey: node.nodeKey,
      Stream: false,
      OmitPeers: true,
      Hostinfo: floodHostinfo(node.hostname, i, bytes),
      Endpoints: ["192.0.2.1:41641"],
    };
    if (node.discoKey) req.DiscoKey = node.discoKey;
    r.sent++;
    try {
      const it = node.client.map(req)[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) throw new ControlError(0, "ended", "map answer ended");
      r.accepted++;
      r.lastAccepted = `flood-${i}`;
    } catch (e) {
      if (e instanceof ControlError && e.status !== 0) r.refused[e.code] = (r.refused[e.code] ?? 0) + 1;
      else r.transportErrors++;
      if (node.client.closed) break;
    }
  }
  return r;
}
