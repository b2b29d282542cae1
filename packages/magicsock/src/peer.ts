/**
 * Per-peer path state (after Tailscale's wgengine/magicsock/endpoint.go): candidate UDP
 * addresses with their ping/pong history, the best address and how long it is trusted,
 * outstanding pings, activity times. Pure state and decisions; the I/O (sealing disco,
 * queueing sends) is in core.ts.
 */
import type { Endpoint } from "@lattice/netaddr";
import { addrPoints } from "./addr.js";
import {
  DISCO_PING_INTERVAL, GOOD_ENOUGH_LATENCY, SWITCH_HYSTERESIS, TRUST_UDP_ADDR_DURATION, UPGRADE_INTERVAL,
} from "./constants.js";

/** Where a candidate address came from. */
export type CandidateSource = "netmap" | "call-me-maybe" | "ping";

/** One candidate UDP address of a peer. */
export interface Candidate {
  readonly ep: Endpoint;
  /** `ep.toString()`: the map key. */
  readonly key: string;
  /** Bonus points ({@link addrPoints}). */
  readonly points: number;
  source: CandidateSource;
  /** now() of the last ping sent to it (0 never). */
  lastPing: number;
  /** now() of the last pong from it (0 never). */
  lastPong: number;
  /** Round-trip time of the last pong (ms). */
  latency: number;
}

/** A ping waiting for its pong. */
export interface SentPing {
  /** The candidate pinged; null when the ping went over DERP. */
  readonly cand: Candidate | null;
  /** DERP region the ping went over (0 = direct). */
  readonly derpRegion: number;
  readonly at: number;
  /** A `ping()` caller waiting for this pong. */
  readonly onPong?: (latencyMs: number, endpoint: string, derpRegion: number) => void;
}

/** A candidate as a betterAddr operand. */
export interface AddrQuality {
  readonly key: string;
  readonly latency: number;
  readonly points: number;
}

/**
 * Whether path `a` should replace the current path `b` (endpoint.go betterAddr): each
 * path's latency is scaled by (100 − bonus points)%, and `a` must beat `b` by more than
 * {@link SWITCH_HYSTERESIS} (1%) so that near-equal paths do not flap.
 */
export function betterAddr(a: AddrQuality, b: AddrQuality | null): boolean {
  if (b === null) return true;
  if (a.key === b.key) return false;
  const sa = (Math.max(a.latency, 0.001) * (100 - a.points)) / 100;
  const sb = (Math.max(b.latency, 0.001) * (100 - b.points)) / 100;
  return sa < sb * (1 - SWITCH_HYSTERESIS);
}

/** A new candidate for `ep`. */
export function newCandidate(ep: Endpoint, source: CandidateSource): Candidate {
  return { ep, key: ep.toString(), points: addrPoints(ep.ip), source, lastPing: 0, lastPong: 0, latency: Infinity };
}

/** Path state of one peer. */
export class PeerState {
  /** Candidates by "ip:port". */
  readonly cands = new Map<string, Candidate>();
  /** Outstanding pings by hex txid. */
  readonly pings = new Map<string, SentPing>();
  /** Best known direct path (may be untrusted: see {@link trusted}). */
  best: Candidate | null = null;
  /** now() until which {@link best} is trusted alone. */
  trustUntil = 0;
  lastFullPing = 0;
  lastCallMeMaybe = 0;
  lastSend = 0;
  lastRecv = 0;
  /** Next heartbeat (0 = off: idle or no disco). */
  heartbeatAt = 0;
  /** A CallMeMaybe waits for a re-STUN until this time (0 = none pending). */
  cmmDue = 0;
  /** The DERP region we last heard this peer on (used when it has no home). */
  lastDerpRegion = 0;
  /** Budget of disco packets with this peer's key that failed to open (see constants). */
  badDiscoTokens = 0;
  badDiscoRefill = 0;

  constructor(
    /** Per-peer id carried in its magic endpoint. */
    readonly id: number,
    readonly magic: Endpoint,
    readonly nodeKey: Uint8Array,
    readonly keyHex: string,
    public discoKey: Uint8Array | null,
    public discoHex: string | null,
    public homeDerp: number,
  ) {}

  /** DERP region to reach the peer: its home, else where we last heard it, else 0. */
  derpRegion(): number {
    return this.homeDerp !== 0 ? this.homeDerp : this.lastDerpRegion;
  }

  /** Whether {@link best} may be used alone (a pong within {@link TRUST_UDP_ADDR_DURATION}). */
  trusted(now: number): boolean {
    return this.best !== null && now < this.trustUntil;
  }

  /** endpoint.go wantFullPingLocked: no path, untrusted path, or a slow path due for an upgrade try. */
  wantFullPing(now: number): boolean {
    if (this.best === null || this.lastFullPing === 0) return true;
    if (now >= this.trustUntil) return true;
    if (this.best.latency <= GOOD_ENOUGH_LATENCY) return false;
    return now - this.lastFullPing >= UPGRADE_INTERVAL;
  }

  /** Candidates due a discovery ping (none in the last {@link DISCO_PING_INTERVAL}). */
  dueForPing(now: number): Candidate[] {
    const out: Candidate[] = [];
    for (const c of this.cands.values()) if (c.lastPing === 0 || now - c.lastPing >= DISCO_PING_INTERVAL) out.push(c);
    return out;
  }

  /**
   * A pong from `c` with round trip `latency`: the path is trusted for another
   * {@link TRUST_UDP_ADDR_DURATION}; it becomes the best path when there is none, the
   * current one is no longer trusted, or it is better by {@link betterAddr}. Returns
   * true when the best path changed.
   */
  notePong(c: Candidate, latency: number, now: number): boolean {
    c.lastPong = now;
    c.latency = latency;
    if (this.best === c) {
      this.trustUntil = now + TRUST_UDP_ADDR_DURATION;
      return false;
    }
    if (this.best === null || !this.trusted(now) || betterAddr(c, this.best)) {
      this.best = c;
      this.trustUntil = now + TRUST_UDP_ADDR_DURATION;
      return true;
    }
    return false;
  }

  /** Forgets the best path (it stopped answering). */
  clearBest(): void {
    this.best = null;
    this.trustUntil = 0;
  }

  /** Forgets all path state (new disco key: the peer restarted). */
  resetPaths(): void {
    this.clearBest();
    this.pings.clear();
    this.lastFullPing = 0;
    this.lastCallMeMaybe = 0;
    this.cmmDue = 0;
    for (const c of this.cands.values()) {
      c.lastPing = 0;
      c.lastPong = 0;
      c.latency = Infinity;
    }
  }
}
