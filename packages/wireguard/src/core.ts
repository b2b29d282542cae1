/**
 * The state of a sans-IO WireGuard device and the small helpers its send, receive and
 * timer paths share (wireguard-go device.go / peer.go). Internal: the public face is
 * {@link Device} (device.ts); send.ts, receive.ts and timer-actions.ts operate on this.
 */
import { ChaChaPoly } from "@lattice/crypto";
import type { OutgoingDatagram } from "./api.js";
import { AllowedIps } from "./allowedips.js";
import { MAX_SAFE_COUNTER, REJECT_AFTER_TIME, REKEY_TIMEOUT_JITTER_MAX } from "./constants.js";
import { CookieChecker, RateLimiter } from "./cookie.js";
import { DeadlineHeap } from "./deadlines.js";
import { clearHandshake, type HandshakeContext } from "./handshake.js";
import { IndexTable } from "./indextable.js";
import type { Keypair } from "./keypair.js";
import type { NoiseKeyPair } from "./noise.js";
import { Peer } from "./peer.js";
import { emptyStats, type DeviceStats, type DropReason } from "./stats.js";

/** Environment of a device core. */
export interface CoreOptions {
  now: () => number;
  wallNow: () => number;
  random: (n: number) => Uint8Array;
  mtu: number;
  underLoad: (() => boolean) | undefined;
  roaming: boolean;
}

/** Device state (fields are shared by the path modules; nothing here does I/O). */
export class DeviceCore {
  readonly now: () => number;
  readonly wallNow: () => number;
  readonly random: (n: number) => Uint8Array;
  readonly underLoadHook: (() => boolean) | undefined;
  /** Whether authenticated packets move a peer's endpoint to their source (see DeviceOptions.roaming). */
  readonly roaming: boolean;
  mtu: number;
  privateKey: Uint8Array | null = null;
  staticKeys: NoiseKeyPair | null = null;
  cookieChecker: CookieChecker | null = null;
  listenPort = 0;
  fwmark = 0;
  up = true;
  readonly peers = new Map<string, Peer>();
  readonly allowed = new AllowedIps<Peer>();
  readonly indices: IndexTable<Peer, Keypair>;
  readonly rateLimiter = new RateLimiter();
  readonly aead = new ChaChaPoly();
  outDatagrams: OutgoingDatagram[] = [];
  outPackets: Uint8Array[] = [];
  readonly counters: DeviceStats = emptyStats();
  underLoadUntil = -Infinity;
  loadWindowStart = -Infinity;
  loadWindowCount = 0;
  /** Peers by next timer deadline; peers whose timers changed wait in `dirty` to be re-filed. */
  readonly deadlines = new DeadlineHeap<Peer>();
  readonly dirty: Peer[] = [];

  constructor(o: CoreOptions) {
    this.now = o.now;
    this.wallNow = o.wallNow;
    this.random = o.random;
    this.mtu = o.mtu;
    this.underLoadHook = o.underLoad;
    this.roaming = o.roaming;
    this.indices = new IndexTable<Peer, Keypair>(o.random);
  }

  /** A new peer whose timer changes feed the deadline heap. */
  newPeer(publicKey: Uint8Array, id: string): Peer {
    return new Peer(publicKey, id, () => this.jitter(), (p) => {
      if (p.timersDirty) return;
      p.timersDirty = true;
      this.dirty.push(p);
    });
  }

  /** Re-files every peer whose timers changed (cost: one per changed peer, not per peer). */
  fileDeadlines(): void {
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) {
      const p = d[i]!;
      p.timersDirty = false;
      if (this.peers.get(p.id) !== p) continue; // removed meanwhile
      this.deadlines.set(p, p.timers.next());
    }
    d.length = 0;
  }

  drop(reason: DropReason, n = 1): void {
    this.counters.drops[reason] += n;
  }

  /** Queues `data` to the peer's endpoint (counted); false (dropped) without an endpoint. */
  emit(p: Peer, data: Uint8Array): boolean {
    if (p.endpoint === null) {
      this.drop("noEndpoint");
      return false;
    }
    this.outDatagrams.push({ data, to: p.endpoint });
    p.txBytes += data.length;
    this.counters.txDatagrams++;
    this.counters.txBytes += data.length;
    return true;
  }

  jitter(): number {
    const r = this.random(2);
    return ((r[0]! << 8) | r[1]!) % REKEY_TIMEOUT_JITTER_MAX;
  }

  usableForSending(kp: Keypair | null, now: number): kp is Keypair {
    return kp !== null && kp.sendNonce < MAX_SAFE_COUNTER && now - kp.created < REJECT_AFTER_TIME;
  }

  hsContext(): HandshakeContext {
    return { staticKeys: this.staticKeys!, indices: this.indices, random: this.random, wallNow: this.wallNow };
  }

  clearHandshake(p: Peer): void {
    clearHandshake(this.indices, p);
  }

  /** Drops every session and the handshake of `p`, and its staged packets. */
  zeroAndFlush(p: Peer): void {
    for (const kp of p.keypairs.clear()) this.indices.delete(kp.localIndex);
    this.clearHandshake(p);
    p.staged = [];
  }

  /**
   * A handshake completed (initiator: response consumed; responder: first transport
   * message on the new session). The one place `lastHandshake` is set, as wireguard-go's
   * timersHandshakeComplete does.
   */
  handshakeComplete(p: Peer): void {
    p.timers.handshakeComplete();
    p.lastHandshakeWallMs = this.wallNow();
  }

  /**
   * Forgets the peer's sticky source, "in case this is the cause of trouble"
   * (wireguard-go timers.go: expiredRetransmitHandshake / expiredNewHandshake mark the
   * endpoint's source for clearing before the next initiation). A new endpoint object:
   * the one received may be shared with the bind.
   */
  clearEndpointSrc(p: Peer): void {
    if (p.endpoint !== null && p.endpoint.hasSrc) p.endpoint = p.endpoint.withoutSrc();
  }

  removePeer(p: Peer): void {
    this.zeroAndFlush(p);
    p.timers.stopAll();
    p.presharedKey.fill(0);
    p.precomputedStaticStatic.fill(0);
    this.allowed.removeByValue(p);
    this.peers.delete(p.id);
    this.deadlines.remove(p);
  }
}
