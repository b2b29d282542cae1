/**
 * The sans-IO magicsock core: peers and their path state, disco (Ping / Pong /
 * CallMeMaybe, Tailscale's disco/disco.go sealed with @lattice/disco), path choice for
 * each outgoing datagram, heartbeats and timeouts. No sockets, no timers: `now` is passed
 * in, randomness injected; outputs are queued in {@link udpOut} / {@link derpOut} for the
 * edge to send, and {@link nextDeadline} says when to call {@link tick}.
 *
 * Behaviour after wgengine/magicsock/endpoint.go: a datagram goes to the trusted direct
 * path alone; else to the last best direct path (if any) and DERP; a full ping round
 * (≤1 ping per candidate per 5 s) runs while no path is trusted or every minute for a
 * slow path, with a CallMeMaybe over DERP; pongs trust a path 6.5 s; active peers get a
 * heartbeat ping every 3 s until idle 45 s. The disco handlers are in disco-handlers.ts.
 */
import { keyEqual } from "@lattice/derp";
import { type DiscoMessage, seal } from "@lattice/disco";
import { x25519PublicKey } from "@lattice/crypto";
import { Endpoint, isTailnetIp } from "@lattice/netaddr";
import type { MagicLog, MagicPeer, PeerPath } from "./api.js";
import { magicEndpoint } from "./addr.js";
import {
  CMM_STUN_WAIT, DISCO_PING_INTERVAL, ENDPOINTS_FRESH, HEARTBEAT_INTERVAL, MAX_CANDIDATES, MAX_PINGS_PER_PEER, PING_TIMEOUT,
  SESSION_ACTIVE_TIMEOUT,
} from "./constants.js";
import { MagicSockError } from "./errors.js";
import { type Candidate, type CandidateSource, newCandidate, PeerState, type SentPing } from "./peer.js";
import { type MagicStats, newStats } from "./stats.js";

/** A datagram for the UDP socket. */
export interface UdpOut {
  readonly data: Uint8Array;
  readonly to: Endpoint;
}
/** A packet for a DERP region, addressed to a node key. */
export interface DerpOut {
  readonly region: number;
  readonly dst: Uint8Array;
  readonly data: Uint8Array;
}

/** {@link MagicCore.route} result bits. */
export const ROUTE_UDP = 1;
export const ROUTE_DERP = 2;

/** Core environment. */
export interface CoreOptions {
  readonly random: (n: number) => Uint8Array;
  readonly discoPrivate: Uint8Array;
  readonly log: MagicLog;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

export class MagicCore {
  readonly discoPublic: Uint8Array;
  readonly stats: MagicStats = newStats();
  /** Queued outputs; the edge drains them (assign a new array or set length 0). */
  udpOut: UdpOut[] = [];
  derpOut: DerpOut[] = [];
  /** Set when a CallMeMaybe wants fresher endpoints: the edge re-STUNs and calls {@link setLocalEndpoints}. */
  stunWanted = false;
  /** Set when {@link nextDeadline} moved earlier since the last tick (the edge re-arms its timer). */
  deadlineChanged = false;
  /** @internal */ readonly byId = new Map<number, PeerState>();
  /** @internal */ readonly byKey = new Map<string, PeerState>();
  /** @internal */ readonly byDisco = new Map<string, PeerState>();
  /** @internal */ nodePublic: Uint8Array | null = null;
  /** @internal */ localEps: Endpoint[] = [];
  private localAt = 0;
  private nextId = 1;
  private soonest = Infinity;
  private addrCache = new WeakMap<Endpoint, PeerState | null>();
  private addrIndex: Map<string, PeerState> | null = null;
  private readonly keys: { publicKey: Uint8Array; privateKey: Uint8Array };

  constructor(readonly o: CoreOptions) {
    if (o.discoPrivate.length !== 32) throw new MagicSockError("ERR_MAGICSOCK_BAD_KEY", `discoPrivate must be 32 bytes, got ${o.discoPrivate.length}`);
    this.discoPublic = x25519PublicKey(o.discoPrivate);
    this.keys = { publicKey: this.discoPublic, privateKey: o.discoPrivate };
  }

  /** Our node public key (sent in pings), null before login. */
  setNodePublic(k: Uint8Array | null): void {
    this.nodePublic = k;
  }

  /**
   * Replaces the peer set (whole netmap). Existing peers keep their path state; a changed
   * disco key resets it (the peer restarted). Throws MagicSockError ERR_MAGICSOCK_BAD_PEER
   * for a key of the wrong length or a node key listed twice (nothing is applied then).
   */
  setPeers(peers: readonly MagicPeer[], now: number): void {
    const seen = new Set<string>();
    peers.forEach((p, i) => {
      if (p.nodeKey.length !== 32) throw new MagicSockError("ERR_MAGICSOCK_BAD_PEER", `peers[${i}].nodeKey must be 32 bytes, got ${p.nodeKey.length}`);
      if (p.discoKey !== null && p.discoKey.length !== 32) throw new MagicSockError("ERR_MAGICSOCK_BAD_PEER", `peers[${i}].discoKey must be 32 bytes or null, got ${p.discoKey.length}`);
      const k = hex(p.nodeKey);
      if (seen.has(k)) throw new MagicSockError("ERR_MAGICSOCK_BAD_PEER", `peers[${i}].nodeKey ${k.slice(0, 16)}… is listed twice`);
      seen.add(k);
    });
    for (const [k, st] of [...this.byKey]) if (!seen.has(k)) this.forget(st);
    for (const p of peers) this.upsert(p, now);
    this.candidatesChanged();
  }

  private forget(st: PeerState): void {
    this.byKey.delete(st.keyHex);
    this.byId.delete(st.id);
    if (st.discoHex !== null && this.byDisco.get(st.discoHex) === st) this.byDisco.delete(st.discoHex);
  }

  private upsert(p: MagicPeer, now: number): void {
    const k = hex(p.nodeKey);
    const dHex = p.discoKey === null ? null : hex(p.discoKey);
    let st = this.byKey.get(k);
    if (st === undefined) {
      while (this.byId.has(this.nextId) || this.nextId === 0) this.nextId = (this.nextId + 1) >>> 0;
      const id = this.nextId;
      this.nextId = (this.nextId + 1) >>> 0;
      st = new PeerState(id, magicEndpoint(id), Uint8Array.from(p.nodeKey), k, p.discoKey && Uint8Array.from(p.discoKey), dHex, p.homeDerp);
      this.byKey.set(k, st);
      this.byId.set(id, st);
    } else if (st.discoHex !== dHex) {
      if (st.discoHex !== null && this.byDisco.get(st.discoHex) === st) this.byDisco.delete(st.discoHex);
      st.discoKey = p.discoKey && Uint8Array.from(p.discoKey);
      st.discoHex = dHex;
      st.resetPaths();
    }
    if (dHex !== null) this.byDisco.set(dHex, st);
    st.homeDerp = p.homeDerp;
    const want = new Map<string, Endpoint>();
    for (const text of p.endpoints) {
      const ep = Endpoint.parse(text);
      if (ep === null || ep.port === 0) {
        this.stats.dropCandidates++;
        continue;
      }
      want.set(ep.toString(), ep);
    }
    for (const [key, c] of [...st.cands]) {
      if (c.source === "netmap" && !want.has(key)) {
        st.cands.delete(key);
        if (st.best === c) st.clearBest();
      }
    }
    for (const ep of want.values()) this.addCandidate(st, ep, "netmap");
    // Without disco no path can be verified: datagrams go to the first listed endpoint
    // (never trusted) and via DERP, "DERP + listed endpoints only".
    if (st.discoKey === null) {
      st.best = want.size > 0 ? st.cands.get(want.keys().next().value!) ?? null : null;
      st.trustUntil = 0;
    }
    void now;
  }

  /** @internal Adds (or returns) a candidate; null when the peer is at its limit (counted). */
  addCandidate(st: PeerState, ep: Endpoint, source: CandidateSource): Candidate | null {
    // A tailnet address is reached through the tunnel itself: using it as a path would
    // loop every packet back into the TUN (Tailscale ignores them as endpoints too).
    if (isTailnetIp(ep.ip)) {
      this.stats.dropTailnetCandidates++;
      return null;
    }
    const key = ep.toString();
    const have = st.cands.get(key);
    if (have !== undefined) {
      if (source === "netmap") have.source = "netmap";
      return have;
    }
    if (st.cands.size >= MAX_CANDIDATES) {
      this.stats.dropCandidates++;
      return null;
    }
    const c = newCandidate(ep, source);
    st.cands.set(key, c);
    this.candidatesChanged();
    return c;
  }

  /** @internal Invalidates the receive-side address caches. */
  candidatesChanged(): void {
    this.addrCache = new WeakMap();
    this.addrIndex = null;
  }

  /** The peer whose magic endpoint carries `id`. */
  peerById(id: number): PeerState | undefined {
    return this.byId.get(id);
  }

  /** The peer of a node key. */
  peerByKey(nodeKey: Uint8Array): PeerState | undefined {
    return this.byKey.get(hex(nodeKey));
  }

  /**
   * The peer one of whose candidates is `from` (receive-side attribution for status).
   * Cached per Endpoint object (the UDP bind reuses one object for a run of datagrams
   * from one source); the "ip:port" → peer index is rebuilt after candidate changes.
   */
  peerForAddr(from: Endpoint): PeerState | null {
    let p = this.addrCache.get(from);
    if (p === undefined) {
      if (this.addrIndex === null) {
        this.addrIndex = new Map();
        for (const st of this.byId.values()) for (const key of st.cands.keys()) this.addrIndex.set(key, st);
      }
      p = this.addrIndex.get(from.toString()) ?? null;
      this.addrCache.set(from, p);
    }
    return p;
  }

  /**
   * Our endpoints. `stunned` = they come from a finished STUN round (fresh for
   * {@link ENDPOINTS_FRESH}): CallMeMaybes waiting for them go out. Interface addresses
   * alone (before the first round) are used but not fresh.
   */
  setLocalEndpoints(eps: Endpoint[], now: number, stunned: boolean): void {
    this.localEps = eps;
    if (!stunned) return;
    this.localAt = now;
    this.stunWanted = false;
    for (const st of this.byId.values()) if (st.cmmDue !== 0) this.sendCallMeMaybe(st);
  }

  /**
   * Path for one outgoing WireGuard datagram to `st` (the send hot path: no allocation
   * unless a ping round is due). Returns {@link ROUTE_UDP} (to `st.best.ep`) and/or
   * {@link ROUTE_DERP} (to `st.derpRegion()`), 0 = no path.
   */
  route(st: PeerState, now: number): number {
    st.lastSend = now;
    if (st.discoKey !== null) {
      if (st.heartbeatAt === 0) {
        st.heartbeatAt = now + HEARTBEAT_INTERVAL;
        this.arm(st.heartbeatAt);
      }
      if (now - st.lastFullPing >= DISCO_PING_INTERVAL && st.wantFullPing(now)) this.fullPing(st, now);
    }
    if (st.trusted(now)) return ROUTE_UDP;
    return (st.best !== null ? ROUTE_UDP : 0) | (st.derpRegion() !== 0 ? ROUTE_DERP : 0);
  }

  /** A WireGuard datagram from `st` arrived (UDP or DERP). */
  noteRecv(st: PeerState, now: number, derpRegion: number): void {
    st.lastRecv = now;
    if (derpRegion !== 0) st.lastDerpRegion = derpRegion;
  }

  /** @internal Seals and queues a disco message to `st` over UDP (`to`) or DERP (region number). */
  sendDisco(st: PeerState, msg: DiscoMessage, to: Endpoint | number): void {
    const pkt = seal(msg, this.keys, st.discoKey!, this.o.random(24));
    if (typeof to === "number") this.derpOut.push({ region: to, dst: st.nodeKey, data: pkt });
    else this.udpOut.push({ data: pkt, to });
  }

  /** @internal Pings candidate `c` (or DERP region `region` when c is null). False when suppressed. */
  ping(st: PeerState, c: Candidate | null, region: number, now: number, onPong?: SentPing["onPong"]): boolean {
    if (st.discoKey === null) return false;
    if (st.pings.size >= MAX_PINGS_PER_PEER) {
      this.stats.pingsSuppressed++;
      return false;
    }
    const txId = this.o.random(12);
    st.pings.set(hex(txId), { cand: c, derpRegion: c === null ? region : 0, at: now, ...(onPong ? { onPong } : {}) });
    const nodeKey = this.nodePublic ?? undefined;
    this.sendDisco(st, { type: "ping", txId, padding: 0, ...(nodeKey ? { nodeKey } : {}) }, c === null ? region : c.ep);
    if (c !== null) c.lastPing = now;
    this.stats.discoSentPing++;
    this.arm(now + PING_TIMEOUT);
    return true;
  }

  /** @internal endpoint.go sendDiscoPingsLocked: ping every candidate due; CallMeMaybe via DERP. */
  fullPing(st: PeerState, now: number): void {
    st.lastFullPing = now;
    let sent = 0;
    for (const c of st.dueForPing(now)) if (this.ping(st, c, 0, now)) sent++;
    this.maybeCallMeMaybe(st, now, sent);
  }

  /** @internal After pinging `sent` candidates: a CallMeMaybe over DERP (at most every 5 s), waiting for a STUN round when our endpoints are stale. */
  private maybeCallMeMaybe(st: PeerState, now: number, sent: number): void {
    if ((sent > 0 || st.cands.size === 0) && st.derpRegion() !== 0 && now - st.lastCallMeMaybe >= DISCO_PING_INTERVAL) {
      st.lastCallMeMaybe = now;
      if (this.localAt === 0 || now - this.localAt > ENDPOINTS_FRESH) {
        this.stunWanted = true;
        st.cmmDue = now + CMM_STUN_WAIT;
        this.arm(st.cmmDue);
      } else this.sendCallMeMaybe(st);
    }
  }

  private sendCallMeMaybe(st: PeerState): void {
    st.cmmDue = 0;
    const region = st.derpRegion();
    if (region === 0 || st.discoKey === null) return;
    const endpoints = this.localEps.map((e) => ({ ip: e.ip.slice(), port: e.port }));
    this.sendDisco(st, { type: "call-me-maybe", endpoints }, region);
    this.stats.discoSentCallMeMaybe++;
  }

  /**
   * A `ping()`: over the trusted direct path; else over DERP and to every candidate (the
   * first pong answers), plus a CallMeMaybe (hole punching, as Tailscale's ping does).
   * Returns false when the peer has no disco key or no path at all.
   */
  userPing(st: PeerState, now: number, onPong: NonNullable<SentPing["onPong"]>): boolean {
    if (st.discoKey === null) return false;
    if (st.trusted(now)) return this.ping(st, st.best, 0, now, onPong);
    let any = false;
    if (st.derpRegion() !== 0) any = this.ping(st, null, st.derpRegion(), now, onPong) || any;
    let sent = 0;
    for (const c of st.cands.values()) if (this.ping(st, c, 0, now, onPong)) sent++;
    // Like `tailscale ping`: the peer is asked to ping us back (CallMeMaybe), so our pings
    // to its endpoints and its pings to ours open both NATs and the pings turn direct.
    this.maybeCallMeMaybe(st, now, sent);
    return any || sent > 0;
  }

  /** Runs due timers: ping timeouts (a dead best path is dropped), heartbeats, delayed CallMeMaybes. */
  tick(now: number): void {
    let soonest = Infinity;
    for (const st of this.byId.values()) {
      for (const [tx, sp] of st.pings) {
        if (now - sp.at < PING_TIMEOUT) {
          soonest = Math.min(soonest, sp.at + PING_TIMEOUT);
          continue;
        }
        st.pings.delete(tx);
        this.stats.pingTimeouts++;
        if (sp.cand !== null && sp.cand === st.best && now >= st.trustUntil) {
          this.o.log.info({ peer: st.keyHex.slice(0, 16), addr: sp.cand.key }, "magicsock: direct path stopped answering; using DERP");
          st.clearBest();
          this.stats.pathLost++;
        }
      }
      if (st.heartbeatAt !== 0 && now >= st.heartbeatAt) {
        if (now - st.lastSend >= SESSION_ACTIVE_TIMEOUT) st.heartbeatAt = 0;
        else {
          st.heartbeatAt = now + HEARTBEAT_INTERVAL;
          if (st.best !== null) this.ping(st, st.best, 0, now);
          if (st.wantFullPing(now)) this.fullPing(st, now);
        }
      }
      if (st.heartbeatAt !== 0) soonest = Math.min(soonest, st.heartbeatAt);
      if (st.cmmDue !== 0) {
        if (now >= st.cmmDue) this.sendCallMeMaybe(st);
        else soonest = Math.min(soonest, st.cmmDue);
      }
      for (const sp of st.pings.values()) soonest = Math.min(soonest, sp.at + PING_TIMEOUT);
    }
    this.soonest = soonest;
    this.deadlineChanged = false;
  }

  /** When {@link tick} should run next (Infinity = nothing pending). */
  nextDeadline(): number {
    return this.soonest;
  }

  /** @internal */
  arm(t: number): void {
    if (t < this.soonest) {
      this.soonest = t;
      this.deadlineChanged = true;
    }
  }

  /** Status view of a peer. */
  peerPath(st: PeerState, now: number): PeerPath {
    return {
      curAddr: st.trusted(now) ? st.best!.key : "",
      derpRegionId: st.derpRegion(),
      lastRecv: st.lastRecv,
      lastSend: st.lastSend,
      addrs: [...st.cands.keys()],
    };
  }

  /** Whether `a` is the node key of `st`. */
  static isNode(st: PeerState, a: Uint8Array): boolean {
    return keyEqual(a, st.nodeKey);
  }
}
