/**
 * Rate limit of Hostinfo changes per node (issue 6 A14), a token bucket: a node may change
 * its Hostinfo `burst` times in a row (a client starting up reports it a few times as its
 * services come up), then once per `minIntervalMs`. A change arriving sooner is not refused — the request's other fields (endpoints, disco key, home DERP) still apply
 * at once — but held back: the newest held Hostinfo is applied when the interval has
 * passed, so the last state a node reports always lands, and a node changing its
 * Hostinfo on every map request costs its peers one update per interval.
 *
 * Unchanged Hostinfo (the same JSON as last applied) passes through and costs nothing.
 * Sans-IO apart from the injected clock and timers; memory per node: a SHA-256 digest, the
 * bucket and at most one held Hostinfo (bounded by the node API's Hostinfo size limit).
 */
import { createHash } from "node:crypto";
import type { Hostinfo, NodeID } from "@lattice/types";
import type { NodeUpdate } from "./backend.js";
import type { Timers } from "./map-stream.js";

/** Options of {@link HostinfoGate}. */
export interface HostinfoGateOptions {
  /** Time one change "token" takes to come back, ms (0 = no limit). */
  minIntervalMs: number;
  /** Changes a node may make in a row before the interval applies (default 3). */
  burst?: number;
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
  /** Change tokens left at `at` (fractional: refilled continuously). */
  tokens: number;
  /** When `tokens` was computed, ms. */
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
    let e = this.#entries.get(nodeId);
    if (e === undefined) {
      // The first Hostinfo this server sees from the node (start, restart) is free.
      e = { digest, tokens: this.#burst, at: now };
      this.#entries.set(nodeId, e);
      return update;
    }
    if (digest === e.digest) {
      this.#drop(e); // back to what peers already have: nothing held any more
      return update;
    }
    this.#refill(e, now);
    if (e.tokens >= 1 && e.held === undefined) {
      e.tokens -= 1;
      e.digest = digest;
      return update;
    }
    this.counters.deferred++;
    e.held = { hostinfo: h, digest };
    e.timer ??= this.opts.timers.setTimeout(() => this.#release(nodeId), Math.ceil((1 - e.tokens) * this.opts.minIntervalMs));
    const { hostinfo: _held, ...rest } = update;
    return Object.keys(rest).length > 0 ? rest : null;
  }

  get #burst(): number {
    return Math.max(1, this.opts.burst ?? 3);
  }

  #refill(e: Entry, now: number): void {
    e.tokens = Math.min(this.#burst, e.tokens + Math.max(0, now - e.at) / this.opts.minIntervalMs);
    e.at = now;
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
    this.#refill(e, this.opts.now());
    e.tokens = Math.max(0, e.tokens - 1);
    e.digest = held.digest;
    this.counters.appliedLater++;
    this.opts.apply(nodeId, { hostinfo: held.hostinfo }).catch((err) => this.opts.log?.(err));
  }
}
