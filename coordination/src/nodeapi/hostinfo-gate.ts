/**
 * Rate limit of Hostinfo changes per node (issue 6 A14): a Hostinfo change is stored and
 * sent to the node's peers at most once per `minIntervalMs`. A change arriving sooner is
 * not refused — the request's other fields (endpoints, disco key, home DERP) still apply
 * at once — but held back: the newest held Hostinfo is applied when the interval has
 * passed, so the last state a node reports always lands, and a node changing its
 * Hostinfo on every map request costs its peers one update per interval.
 *
 * Unchanged Hostinfo (the same JSON as last applied) passes through and costs nothing.
 * Sans-IO apart from the injected clock and timers; memory per node: a SHA-256 digest, a
 * time and at most one held Hostinfo (bounded by the node API's Hostinfo size limit).
 */
import { createHash } from "node:crypto";
import type { Hostinfo, NodeID } from "@lattice/types";
import type { NodeUpdate } from "./backend.js";
import type { Timers } from "./map-stream.js";

/** Options of {@link HostinfoGate}. */
export interface HostinfoGateOptions {
  /** Minimum time between two applied Hostinfo changes of one node, ms (0 = no limit). */
  minIntervalMs: number;
  /** Current time, ms. */
  now: () => number;
  timers: Timers;
  /** Stores a held-back Hostinfo (the backend's updateNodeFromMapRequest). */
  apply: (nodeId: NodeID, update: NodeUpdate) => Promise<void>;
  /** Failures of a delayed apply (a deleted node's are expected and may be ignored). */
  log?: (err: unknown) => void;
}

/** Counters of the gate. */
export interface HostinfoGateCounters {
  /** Hostinfo changes held back because they came within the interval. */
  deferred: number;
  /** Held-back changes applied later (fewer than `deferred`: newer ones replace held ones). */
  appliedLater: number;
}

interface Entry {
  /** Digest of the Hostinfo last let through. */
  digest: string;
  /** When it was let through, ms. */
  at: number;
  held?: { hostinfo: Hostinfo; digest: string };
  timer?: unknown;
}

function digestOf(h: Hostinfo): string {
  return createHash("sha256").update(JSON.stringify(h)).digest("base64");
}

/** Per-node rate limit of Hostinfo changes; see the module comment. */
export class HostinfoGate {
  readonly counters: HostinfoGateCounters = { deferred: 0, appliedLater: 0 };
  readonly #entries = new Map<NodeID, Entry>();
  #closed = false;

  constructor(private readonly opts: HostinfoGateOptions) {}

  /**
   * What of `update` to apply now: the update itself, or a copy without `hostinfo` when
   * that change is held back (null when nothing else is left).
   */
  admit(nodeId: NodeID, update: NodeUpdate): NodeUpdate | null {
    const h = update.hostinfo;
    if (h === undefined || this.opts.minIntervalMs <= 0) return update;
    const digest = digestOf(h);
    const now = this.opts.now();
    const e = this.#entries.get(nodeId);
    if (e === undefined) {
      this.#entries.set(nodeId, { digest, at: now });
      return update;
    }
    if (digest === e.digest) {
      this.#drop(e); // back to what peers already have: nothing held any more
      return update;
    }
    if (now - e.at >= this.opts.minIntervalMs) {
      this.#drop(e);
      e.digest = digest;
      e.at = now;
      return update;
    }
    this.counters.deferred++;
    e.held = { hostinfo: h, digest };
    e.timer ??= this.opts.timers.setTimeout(() => this.#release(nodeId), e.at + this.opts.minIntervalMs - now);
    const { hostinfo: _held, ...rest } = update;
    return Object.keys(rest).length > 0 ? rest : null;
  }

  /** Nodes with a held-back Hostinfo (for tests and metrics). */
  held(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.held) n++;
    return n;
  }

  /** Forgets a node (deleted): drops what was held for it. */
  forget(nodeId: NodeID): void {
    const e = this.#entries.get(nodeId);
    if (e) this.#drop(e);
    this.#entries.delete(nodeId);
  }

  /** Cancels every timer; held changes are dropped (nodes resend Hostinfo on reconnect). */
  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) this.#drop(e);
    this.#entries.clear();
  }

  #drop(e: Entry): void {
    if (e.timer !== undefined) this.opts.timers.clearTimeout(e.timer);
    e.timer = undefined;
    e.held = undefined;
  }

  #release(nodeId: NodeID): void {
    const e = this.#entries.get(nodeId);
    if (!e || this.#closed) return;
    e.timer = undefined;
    const held = e.held;
    if (!held) return;
    e.held = undefined;
    e.digest = held.digest;
    e.at = this.opts.now();
    this.counters.appliedLater++;
    this.opts.apply(nodeId, { hostinfo: held.hostinfo }).catch((err) => this.opts.log?.(err));
  }
}
