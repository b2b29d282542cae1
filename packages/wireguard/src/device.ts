/**
 * The sans-IO WireGuard device (whitepaper §5–6; structure after wireguard-go device/).
 *
 * Inputs (all synchronous, never throw on network input):
 *   - `sendPacket(ip)` / `sendPackets(batch)`: inner IPv4/IPv6 packets read from the TUN.
 *   - `receiveDatagram(data, from)` / `receiveDatagrams(batch)`: UDP payloads received.
 *     Transport messages are decrypted IN PLACE: the caller hands over `data` and must not
 *     reuse it; delivered packets are views into it.
 *   - `tick()`: runs the timers due at `now()`; call it at `nextDeadline()` (monotonic ms).
 *   - `applyConfig(update)` (UAPI `set=1` semantics), `setUp(up)`.
 * Outputs, drained by the edge after each call (or batch of calls):
 *   - `takeDatagrams()`: OutgoingDatagram[] to send on the UDP socket, in order. Transport
 *     datagrams are Buffers that may share a pooled ArrayBuffer: send or copy them, never
 *     transfer their `.buffer` to a worker.
 *   - `takePackets()`: decrypted inner packets (trimmed to their IP length) for the TUN.
 *   - `nextDeadline()`: when to call `tick()` next (undefined = no timer pending).
 * Queries: `snapshot()` (UAPI `get=1`), `stats()` (device counters and drop reasons),
 * `publicKey`, `peerForAddress(addr)` (cryptokey routing lookup, e.g. for the SSH server).
 *
 * Transport sealing/opening goes through the two narrow methods `sealTransport` /
 * `openTransport` so that a later step can move AEAD work to worker threads.
 */
import { ChaChaPoly, LowOrderPointError, constantTimeEqual } from "@lattice/crypto";
import type { DeviceSnapshot, DeviceUpdate, Endpoint, OutgoingDatagram, PeerSnapshot, PeerUpdate } from "./api.js";
import { AllowedIps } from "./allowedips.js";
import {
  DEFAULT_MTU, MAX_TIMER_HANDSHAKES, QUEUE_HANDSHAKE_SIZE, QUEUE_STAGED_SIZE,
  REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_ON_RECEIVE_TIME, REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX, UNDER_LOAD_AFTER_TIME, KEEPALIVE_TIMEOUT, ZERO_KEY_MATERIAL_TIME, MAX_SAFE_COUNTER,
} from "./constants.js";
import { CookieChecker, RateLimiter } from "./cookie.js";
import { IndexTable } from "./indextable.js";
import { destinationOf, innerPacketLength } from "./inner.js";
import { Keypair } from "./keypair.js";
import {
  MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT, TRANSPORT_HEADER_SIZE, TRANSPORT_MIN_SIZE,
  messageType, paddedSize, parseCookieReply, parseInitiation, parseResponse, readU32,
  writeTransportHeader,
} from "./messages.js";
import {
  beginSymmetricSession, clearHandshake, consumeInitiation, consumeResponse, createInitiation, createResponse, type HandshakeContext,
} from "./handshake.js";
import { noiseKeyPair, type NoiseKeyPair } from "./noise.js";
import { Peer } from "./peer.js";
import { emptyStats, type DeviceStats, type DropReason } from "./stats.js";

/** What the device needs from its environment. */
export interface DeviceOptions {
  /** Monotonic clock, milliseconds. */
  now: () => number;
  /** Wall clock, ms since the Unix epoch (TAI64N timestamps, last-handshake time). Defaults to Date.now. */
  wallNow?: () => number;
  /** Cryptographic randomness: n fresh random bytes. */
  random: (n: number) => Uint8Array;
  /** Inner MTU used for padding (default 1420). */
  mtu?: number;
  /** Extra under-load signal from the edge (e.g. its receive queue is backing up). */
  underLoad?: () => boolean;
}

/** A received datagram, for {@link Device.receiveDatagrams}. */
export interface IncomingDatagram {
  readonly data: Uint8Array;
  readonly from: Endpoint;
}

const EMPTY = new Uint8Array(0);

/** A WireGuard interface without I/O. See the file comment for the calling convention. */
export class Device {
  private readonly now: () => number;
  private readonly wallNow: () => number;
  private readonly random: (n: number) => Uint8Array;
  private readonly underLoadHook: (() => boolean) | undefined;
  /** Inner MTU for padding. */
  mtu: number;

  private privateKey: Uint8Array | null = null;
  private staticKeys: NoiseKeyPair | null = null;
  private listenPort = 0;
  private fwmark = 0;
  private up = true;
  private readonly peers = new Map<string, Peer>();
  private readonly allowed = new AllowedIps<Peer>();
  private readonly indices: IndexTable<Peer, Keypair>;
  private cookieChecker: CookieChecker | null = null;
  private readonly rateLimiter = new RateLimiter();
  private readonly aead = new ChaChaPoly();
  private outDatagrams: OutgoingDatagram[] = [];
  private outPackets: Uint8Array[] = [];
  private readonly counters: DeviceStats = emptyStats();
  private underLoadUntil = -Infinity;
  private loadWindowStart = -Infinity;
  private loadWindowCount = 0;

  constructor(opts: DeviceOptions) {
    this.now = opts.now;
    this.wallNow = opts.wallNow ?? Date.now;
    this.random = opts.random;
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.underLoadHook = opts.underLoad;
    this.indices = new IndexTable<Peer, Keypair>(opts.random);
  }

  // ───────────────────────────── configuration ─────────────────────────────

  /** Our static public key, or null without a private key. */
  get publicKey(): Uint8Array | null {
    return this.staticKeys ? Uint8Array.from(this.staticKeys.publicKey) : null;
  }

  /** Applies a validated UAPI `set=1` request (wireguard-go semantics). */
  applyConfig(u: DeviceUpdate): void {
    if (u.privateKey !== undefined) this.setPrivateKey(u.privateKey);
    const portChanged = u.listenPort !== undefined && u.listenPort !== this.listenPort && this.listenPort !== 0;
    if (u.listenPort !== undefined) this.listenPort = u.listenPort;
    if (u.fwmark !== undefined) this.fwmark = u.fwmark;
    if (u.replacePeers) for (const p of [...this.peers.values()]) this.removePeer(p);
    for (const pu of u.peers) this.applyPeer(pu);
    if (portChanged) this.listenPortChanged();
  }

  /**
   * The UDP socket moved to another port (the edge rebound it). A reply to an initiation
   * sent from the old port goes there and is lost, so a pending handshake starts over at
   * once from the new port instead of after its REKEY_TIMEOUT retry; a peer with a
   * session gets a keepalive, so it learns the new port now (roaming) rather than with
   * the next data packet. wireguard-go only rebinds (its mobile apps add the keepalives).
   */
  private listenPortChanged(): void {
    if (!this.up) return;
    const now = this.now();
    for (const p of this.peers.values()) {
      if (p.handshake.state === "initiationCreated") this.restartHandshake(p);
      else if (this.usableForSending(p.keypairs.current, now)) this.sendKeepalive(p);
    }
  }

  /**
   * Sends a new initiation now, regardless of when the last one went out: for a handshake
   * in flight that a configuration change made pointless (new endpoint, new port).
   */
  private restartHandshake(p: Peer): void {
    p.handshake.lastSentHandshake = -Infinity;
    this.sendHandshakeInitiation(p, false);
  }

  private applyPeer(pu: PeerUpdate): void {
    // A peer with our own public key is ignored, as wireguard-go does.
    if (this.staticKeys && constantTimeEqual(pu.publicKey, this.staticKeys.publicKey)) return;
    const id = Buffer.from(pu.publicKey).toString("hex");
    let peer = this.peers.get(id);
    if (pu.remove) {
      if (peer) this.removePeer(peer);
      return;
    }
    if (!peer) {
      if (pu.updateOnly) return;
      peer = new Peer(Uint8Array.from(pu.publicKey), id, () => this.jitter());
      peer.precompute(this.privateKey);
      this.peers.set(id, peer);
    }
    if (pu.presharedKey !== undefined) {
      // The old key is zeroed; a session in use keeps its keys, the next handshake uses the new PSK.
      peer.presharedKey.fill(0);
      peer.presharedKey = pu.presharedKey === null ? new Uint8Array(32) : Uint8Array.from(pu.presharedKey);
    }
    // A configured endpoint has no sticky source: the kernel picks one (wireguard-go ClearSrc).
    let endpointMoved = false;
    if (pu.endpoint !== undefined) {
      const old = peer.endpoint;
      peer.endpoint = pu.endpoint.withoutSrc();
      endpointMoved = old !== null && !old.sameAddrPort(pu.endpoint);
    }
    let pkaTurnedOn = false;
    if (pu.persistentKeepaliveInterval !== undefined) {
      const old = peer.timers.persistentKeepaliveInterval;
      peer.timers.persistentKeepaliveInterval = pu.persistentKeepaliveInterval * 1000;
      pkaTurnedOn = old === 0 && pu.persistentKeepaliveInterval > 0;
      if (pu.persistentKeepaliveInterval === 0) peer.timers.del("persistentKeepalive");
    }
    if (pu.replaceAllowedIps) this.allowed.removeByValue(peer);
    for (const ip of pu.allowedIps) this.allowed.insert(ip, peer);
    if (this.up) {
      // An initiation in flight went to the old address: send a new one there now rather
      // than after the REKEY_TIMEOUT retry (the kernel and wireguard-go wait for the retry).
      if (endpointMoved && peer.handshake.state === "initiationCreated") this.restartHandshake(peer);
      if (pkaTurnedOn) this.sendKeepalive(peer);
      else this.sendStaged(peer);
    }
  }

  private setPrivateKey(key: Uint8Array | null): void {
    if (key !== null && this.privateKey !== null && constantTimeEqual(key, this.privateKey)) return;
    // The replaced key is zeroed (and the clamped copy of it the handshakes used).
    this.privateKey?.fill(0);
    this.staticKeys?.privateKey.fill(0);
    this.privateKey = key === null ? null : Uint8Array.from(key);
    if (key === null) {
      this.staticKeys = null;
      this.cookieChecker = null;
    } else {
      this.staticKeys = noiseKeyPair(key);
      this.cookieChecker = new CookieChecker(this.staticKeys.publicKey, this.random);
      // Peers whose public key is now our own are removed (wireguard-go SetPrivateKey).
      const own = this.staticKeys.publicKey;
      for (const p of [...this.peers.values()]) if (constantTimeEqual(p.publicKey, own)) this.removePeer(p);
    }
    for (const p of this.peers.values()) {
      p.precompute(this.privateKey === null ? null : this.staticKeys!.privateKey);
      this.expireCurrentKeypairs(p);
    }
  }

  /**
   * Sessions stay valid for receiving, but we no longer send on them; the handshake is
   * cleared and the next one may start at once (wireguard-go ExpireCurrentKeypairs: the
   * "last initiation sent" time is set back, else the first packet after a key change
   * would wait up to REKEY_TIMEOUT for a handshake).
   */
  private expireCurrentKeypairs(p: Peer): void {
    this.clearHandshake(p);
    p.handshake.lastSentHandshake = -Infinity;
    if (p.keypairs.current) p.keypairs.current.sendNonce = MAX_SAFE_COUNTER;
    if (p.keypairs.next) p.keypairs.next.sendNonce = MAX_SAFE_COUNTER;
  }

  private clearHandshake(p: Peer): void {
    clearHandshake(this.indices, p);
  }

  private removePeer(p: Peer): void {
    this.zeroAndFlush(p);
    p.timers.stopAll();
    p.presharedKey.fill(0);
    p.precomputedStaticStatic.fill(0);
    this.allowed.removeByValue(p);
    this.peers.delete(p.id);
  }

  /** Drops every session and the handshake of `p`, and its staged packets. */
  private zeroAndFlush(p: Peer): void {
    for (const kp of p.keypairs.clear()) this.indices.delete(kp.localIndex);
    this.clearHandshake(p);
    p.staged = [];
  }

  /**
   * Brings the device up or down (the edge follows the interface's link state; wireguard-go
   * device.go upLocked/downLocked, peer.go Start/Stop). Down: every session and handshake
   * is zeroed, staged packets and timers are dropped, nothing is sent and whatever
   * arrives is dropped (counted as `deviceDown`); the configuration (keys, peers,
   * endpoints, allowed IPs) stays. Up: each peer starts afresh (a handshake may start at
   * once) and peers with a persistent keepalive get one, which starts their handshake.
   */
  setUp(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    for (const p of this.peers.values()) {
      if (!up) {
        this.zeroAndFlush(p);
        p.timers.stopAll();
        continue;
      }
      p.handshake.lastSentHandshake = -Infinity;
      if (p.timers.persistentKeepaliveInterval > 0) this.sendKeepalive(p);
    }
  }

  /** Whether the device is up (see {@link setUp}). */
  get isUp(): boolean {
    return this.up;
  }

  /** The configuration and counters as UAPI `get=1` reports them. */
  snapshot(): DeviceSnapshot {
    const peers: PeerSnapshot[] = [];
    for (const p of this.peers.values()) {
      const ms = p.lastHandshakeWallMs;
      const sec = Math.floor(ms / 1000);
      peers.push({
        publicKey: Uint8Array.from(p.publicKey),
        presharedKey: p.presharedKey.every((b) => b === 0) ? null : Uint8Array.from(p.presharedKey),
        endpoint: p.endpoint,
        persistentKeepaliveInterval: p.timers.persistentKeepaliveInterval / 1000,
        allowedIps: this.allowed.entriesFor(p),
        lastHandshakeTimeSec: sec,
        lastHandshakeTimeNsec: Math.round((ms - sec * 1000) * 1e6),
        rxBytes: BigInt(p.rxBytes),
        txBytes: BigInt(p.txBytes),
        protocolVersion: 1,
      });
    }
    return { privateKey: this.privateKey ? Uint8Array.from(this.privateKey) : null, listenPort: this.listenPort, fwmark: this.fwmark, peers };
  }

  /** A copy of the device counters and per-reason drop counts. */
  stats(): DeviceStats {
    return { ...this.counters, drops: { ...this.counters.drops } };
  }

  /** The public key of the peer whose allowed IPs hold `addr` (4 or 16 bytes), if any. */
  peerForAddress(addr: Uint8Array): Uint8Array | undefined {
    const p = this.allowed.lookup(addr);
    return p ? Uint8Array.from(p.publicKey) : undefined;
  }

  /**
   * Marks the device under load until `until` (monotonic ms): handshakes then need a valid
   * mac2 (else they get a cookie reply) and are rate-limited per source IP.
   */
  setUnderLoadUntil(until: number): void {
    this.underLoadUntil = until;
  }

  // ───────────────────────────── outputs ─────────────────────────────

  /** Datagrams produced since the last call, in order. */
  takeDatagrams(): OutgoingDatagram[] {
    const d = this.outDatagrams;
    this.outDatagrams = [];
    return d;
  }

  /** Decrypted inner packets produced since the last call, for the TUN. */
  takePackets(): Uint8Array[] {
    const d = this.outPackets;
    this.outPackets = [];
    return d;
  }

  /** The earliest pending timer (monotonic ms), or undefined. */
  nextDeadline(): number | undefined {
    let m: number | undefined;
    for (const p of this.peers.values()) {
      const d = p.timers.next();
      if (d !== undefined && (m === undefined || d < m)) m = d;
    }
    return m;
  }

  private drop(reason: DropReason, n = 1): void {
    this.counters.drops[reason] += n;
  }

  private emit(p: Peer, data: Uint8Array): boolean {
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

  private jitter(): number {
    const r = this.random(2);
    return ((r[0] << 8) | r[1]) % REKEY_TIMEOUT_JITTER_MAX;
  }

  // ───────────────────────────── send path ─────────────────────────────

  /** Encrypts and sends one inner packet from the TUN (or stages it and starts a handshake). */
  sendPacket(packet: Uint8Array): void {
    const p = this.stage(packet);
    if (p) this.sendStaged(p);
  }

  /** As sendPacket for a batch: each peer's packets are flushed once. */
  sendPackets(batch: readonly Uint8Array[]): void {
    const touched = new Set<Peer>();
    for (const pkt of batch) {
      const p = this.stage(pkt);
      if (p) touched.add(p);
    }
    for (const p of touched) this.sendStaged(p);
  }

  private stage(packet: Uint8Array): Peer | null {
    if (!this.up) {
      this.drop("deviceDown");
      return null;
    }
    if (this.staticKeys === null) {
      this.drop("noPrivateKey");
      return null;
    }
    const dst = destinationOf(packet);
    if (dst === null) {
      this.drop("invalidInnerPacket");
      return null;
    }
    const p = this.allowed.lookupAt(packet, dst.offset, dst.family);
    if (p === undefined) {
      this.drop("noRoute");
      return null;
    }
    this.counters.tunInPackets++;
    this.counters.tunInBytes += packet.length;
    if (p.staged.length >= QUEUE_STAGED_SIZE) {
      p.staged.shift();
      this.drop("stagedQueueFull");
    }
    p.staged.push(packet);
    return p;
  }

  private sendKeepalive(p: Peer): void {
    if (p.staged.length === 0) p.staged.push(EMPTY);
    this.sendStaged(p);
  }

  private usableForSending(kp: Keypair | null, now: number): kp is Keypair {
    return kp !== null && kp.sendNonce < MAX_SAFE_COUNTER && now - kp.created < REJECT_AFTER_TIME;
  }

  private sendStaged(p: Peer): void {
    if (p.staged.length === 0 || !this.up) return;
    const now = this.now();
    const kp = p.keypairs.current;
    if (!this.usableForSending(kp, now)) {
      this.sendHandshakeInitiation(p, false);
      return;
    }
    const batch = p.staged;
    p.staged = [];
    let i = 0;
    for (; i < batch.length; i++) {
      if (kp.sendNonce >= MAX_SAFE_COUNTER) break;
      const pkt = batch[i];
      const msg = this.sealTransport(kp, pkt);
      if (!this.emit(p, msg)) continue;
      p.timers.anyAuthenticatedPacketTraversal(now);
      p.timers.anyAuthenticatedPacketSent();
      if (pkt.length !== 0) p.timers.dataSent(now);
      else this.counters.keepalivesSent++;
    }
    if (i < batch.length) {
      p.staged = batch.slice(i);
      this.sendHandshakeInitiation(p, false);
      return;
    }
    // keepKeyFreshSending
    if (kp.isInitiator && (kp.sendNonce > REKEY_AFTER_MESSAGES || now - kp.created > REKEY_AFTER_TIME)) {
      this.sendHandshakeInitiation(p, false);
    }
  }

  /** Seals one inner packet into a complete transport message (the AEAD seam). */
  sealTransport(kp: Keypair, pkt: Uint8Array): Uint8Array {
    const padded = paddedSize(pkt.length, this.mtu);
    // Uninitialised (pooled) memory: every byte is written below (header, packet, zero padding, ciphertext).
    const out: Uint8Array = Buffer.allocUnsafe(TRANSPORT_HEADER_SIZE + padded + 16);
    out.set(pkt, TRANSPORT_HEADER_SIZE);
    if (padded > pkt.length) out.fill(0, TRANSPORT_HEADER_SIZE + pkt.length, TRANSPORT_HEADER_SIZE + padded);
    const nonce = kp.sendNonce++;
    writeTransportHeader(out, kp.remoteIndex, nonce);
    this.aead.sealInto(out.subarray(TRANSPORT_HEADER_SIZE), kp.sendKey, nonce, out.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + padded), null);
    return out;
  }

  private sendHandshakeInitiation(p: Peer, isRetry: boolean): void {
    if (!isRetry) p.timers.handshakeAttempts = 0;
    const now = this.now();
    if (now - p.handshake.lastSentHandshake < REKEY_TIMEOUT) {
      // Rate-limited (one initiation per REKEY_TIMEOUT): the handshake is still wanted, so
      // make sure a retry is due when the limit ends (else staged packets would wait for
      // an unrelated event).
      if (!p.timers.pending("retransmitHandshake")) {
        p.timers.mod("retransmitHandshake", p.handshake.lastSentHandshake + REKEY_TIMEOUT + this.jitter());
      }
      return;
    }
    if (this.staticKeys === null || !p.canHandshake) {
      this.drop(this.staticKeys === null ? "noPrivateKey" : "lowOrderKey");
      return;
    }
    p.handshake.lastSentHandshake = now;
    let msg: Uint8Array;
    try {
      msg = createInitiation(this.hsContext(), p, now);
    } catch (e) {
      if (e instanceof LowOrderPointError) {
        this.drop("lowOrderKey");
        return;
      }
      throw e;
    }
    p.timers.anyAuthenticatedPacketTraversal(now);
    p.timers.anyAuthenticatedPacketSent();
    if (this.emit(p, msg)) this.counters.handshakeInitiationsSent++;
    p.timers.handshakeInitiated(now);
  }

  // ───────────────────────────── receive path ─────────────────────────────

  /** Handles one UDP payload received from `from`. Never throws on hostile input. */
  receiveDatagram(data: Uint8Array, from: Endpoint): void {
    this.counters.rxDatagrams++;
    this.counters.rxBytes += data.length;
    if (!this.up) {
      this.drop("deviceDown");
      return;
    }
    switch (messageType(data)) {
      case MESSAGE_TRANSPORT:
        this.receiveTransport(data, from);
        return;
      case MESSAGE_INITIATION:
      case MESSAGE_RESPONSE:
        this.receiveHandshake(data, from);
        return;
      case MESSAGE_COOKIE_REPLY:
        this.receiveCookieReply(data);
        return;
      default:
        this.drop("unknownMessageType");
    }
  }

  /** Handles a batch of received datagrams (packets for the TUN accumulate in order). */
  receiveDatagrams(batch: readonly IncomingDatagram[]): void {
    for (const d of batch) this.receiveDatagram(d.data, d.from);
  }

  private isUnderLoad(now: number): boolean {
    if (now - this.loadWindowStart >= 1000) {
      this.loadWindowStart = now;
      this.loadWindowCount = 0;
    }
    if (++this.loadWindowCount >= QUEUE_HANDSHAKE_SIZE / 8) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    if (this.underLoadHook?.()) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    return now < this.underLoadUntil;
  }

  private receiveHandshake(data: Uint8Array, from: Endpoint): void {
    const isInit = data[0] === MESSAGE_INITIATION;
    const init = isInit ? parseInitiation(data) : null;
    const resp = isInit ? null : parseResponse(data);
    if (init === null && resp === null) {
      this.drop(isInit ? "malformedInitiation" : "malformedResponse");
      return;
    }
    if (this.cookieChecker === null || this.staticKeys === null) {
      this.drop("noPrivateKey");
      return;
    }
    if (!this.cookieChecker.checkMac1(data)) {
      this.drop("invalidMac1");
      return;
    }
    const now = this.now();
    if (this.isUnderLoad(now)) {
      const src = from.addrPortBytes();
      if (!this.cookieChecker.checkMac2(data, src, now)) {
        const sender = init ? init.sender : resp!.sender;
        this.outDatagrams.push({ data: this.cookieChecker.createReply(data, sender, src, now), to: from });
        this.counters.txDatagrams++;
        this.counters.txBytes += 64;
        this.counters.cookieRepliesSent++;
        this.drop("cookieReplySent");
        return;
      }
      if (!this.rateLimiter.allow(from.ip, now)) {
        this.drop("rateLimited");
        return;
      }
    }
    try {
      if (init) this.handleInitiation(data, init.sender, init.body, from, now);
      else this.handleResponse(data, resp!.sender, resp!.receiver, resp!.body, from, now);
    } catch (e) {
      if (e instanceof LowOrderPointError) {
        this.drop("lowOrderKey");
        return;
      }
      throw e;
    }
  }

  private hsContext(): HandshakeContext {
    return { staticKeys: this.staticKeys!, indices: this.indices, random: this.random, wallNow: this.wallNow };
  }

  /** An authenticated handshake message from `p`: roam to its source, count it, fire the timer events. */
  private handshakeAuthenticated(p: Peer, data: Uint8Array, from: Endpoint, now: number): void {
    p.endpoint = from;
    p.rxBytes += data.length;
    p.timers.anyAuthenticatedPacketTraversal(now);
    p.timers.anyAuthenticatedPacketReceived();
  }

  private handleInitiation(data: Uint8Array, sender: number, body: Uint8Array, from: Endpoint, now: number): void {
    const ctx = this.hsContext();
    const r = consumeInitiation(ctx, (pub) => this.peers.get(Buffer.from(pub).toString("hex")), sender, body, now);
    if (typeof r === "string") {
      this.drop(r);
      return;
    }
    const p = r;
    this.handshakeAuthenticated(p, data, from, now);
    const msg = createResponse(ctx, p, now);
    beginSymmetricSession(ctx, p, false, now);
    this.counters.sessionsDerived++;
    p.timers.sessionDerived(now);
    p.timers.anyAuthenticatedPacketTraversal(now);
    p.timers.anyAuthenticatedPacketSent();
    if (this.emit(p, msg)) this.counters.handshakeResponsesSent++;
  }

  private handleResponse(data: Uint8Array, sender: number, receiver: number, body: Uint8Array, from: Endpoint, now: number): void {
    const ctx = this.hsContext();
    const r = consumeResponse(ctx, sender, receiver, body);
    if (typeof r === "string") {
      this.drop(r);
      return;
    }
    const p = r;
    this.handshakeAuthenticated(p, data, from, now);
    beginSymmetricSession(ctx, p, true, now);
    this.counters.sessionsDerived++;
    p.timers.sessionDerived(now);
    p.timers.handshakeComplete();
    p.lastHandshakeWallMs = this.wallNow();
    this.sendKeepalive(p);
  }

  private receiveCookieReply(data: Uint8Array): void {
    const m = parseCookieReply(data);
    if (m === null) {
      this.drop("malformedCookieReply");
      return;
    }
    const entry = this.indices.lookup(m.receiver);
    if (entry === undefined || !entry.peer.cookies.consumeReply(m, this.now())) {
      this.drop("invalidCookieReply");
    }
  }

  /** Opens a transport message in place; returns the plaintext length or −1 (the AEAD seam). */
  openTransport(kp: Keypair, data: Uint8Array, counter: number | bigint): number {
    return this.aead.openInto(data.subarray(TRANSPORT_HEADER_SIZE, data.length - 16), kp.receiveKey, counter, data.subarray(TRANSPORT_HEADER_SIZE), null);
  }

  private receiveTransport(data: Uint8Array, from: Endpoint): void {
    if (data.length < TRANSPORT_MIN_SIZE) {
      this.drop("malformedTransport");
      return;
    }
    const entry = this.indices.lookup(readU32(data, 4));
    const kp = entry?.keypair;
    if (entry === undefined || kp == null) {
      this.drop("unknownIndex");
      return;
    }
    const now = this.now();
    if (now - kp.created >= REJECT_AFTER_TIME) {
      this.drop("keypairExpired");
      return;
    }
    const lo = readU32(data, 8);
    const hi = readU32(data, 12);
    const counter = hi < 0x200000 ? hi * 0x1_0000_0000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
    const n = this.openTransport(kp, data, counter);
    if (n < 0) {
      this.drop("decryptFailed");
      return;
    }
    if (!kp.replay.validateHiLo(hi, lo)) {
      this.drop("replayedCounter");
      return;
    }
    const p = entry.peer;
    p.endpoint = from; // roaming
    p.rxBytes += data.length;
    p.timers.anyAuthenticatedPacketTraversal(now);
    p.timers.anyAuthenticatedPacketReceived();
    const { promoted, dropped } = p.keypairs.receivedWith(kp);
    for (const d of dropped) this.indices.delete(d.localIndex);
    if (promoted) {
      p.timers.handshakeComplete();
      p.lastHandshakeWallMs = this.wallNow();
      this.sendStaged(p);
    }
    // keepKeyFreshReceiving
    const cur = p.keypairs.current;
    if (cur !== null && cur.isInitiator && now - cur.created > REKEY_ON_RECEIVE_TIME && !p.timers.sentLastMinuteHandshake) {
      p.timers.sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(p, false);
    }
    if (n === 0) {
      this.counters.keepalivesReceived++;
      return;
    }
    p.timers.dataReceived(now);
    const pkt = data.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + n);
    const len = innerPacketLength(pkt, n);
    if (len < 0) {
      this.drop("invalidInnerPacket");
      return;
    }
    const v4 = pkt[0] >> 4 === 4;
    if (this.allowed.lookupAt(pkt, v4 ? 12 : 8, v4 ? 4 : 6) !== p) {
      this.drop("sourceNotAllowed");
      return;
    }
    const out = len === n ? pkt : pkt.subarray(0, len);
    this.outPackets.push(out);
    this.counters.tunOutPackets++;
    this.counters.tunOutBytes += len;
  }

  // ───────────────────────────── timers ─────────────────────────────

  /** Runs every timer due at `now()`. */
  tick(): void {
    const now = this.now();
    for (const p of [...this.peers.values()]) {
      for (const t of p.timers.takeExpired(now)) {
        switch (t) {
          case "retransmitHandshake":
            if (p.timers.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
              this.drop("handshakeGaveUp", p.staged.filter((x) => x.length > 0).length);
              p.staged = [];
              p.timers.del("sendKeepalive");
              if (!p.timers.pending("zeroKeyMaterial")) p.timers.mod("zeroKeyMaterial", now + ZERO_KEY_MATERIAL_TIME);
            } else {
              p.timers.handshakeAttempts++;
              this.sendHandshakeInitiation(p, true);
            }
            break;
          case "sendKeepalive":
            this.sendKeepalive(p);
            if (p.timers.needAnotherKeepalive) {
              p.timers.needAnotherKeepalive = false;
              p.timers.mod("sendKeepalive", now + KEEPALIVE_TIMEOUT);
            }
            break;
          case "newHandshake":
            this.sendHandshakeInitiation(p, false);
            break;
          case "zeroKeyMaterial":
            this.zeroAndFlush(p);
            break;
          case "persistentKeepalive":
            if (p.timers.persistentKeepaliveInterval > 0) this.sendKeepalive(p);
            break;
        }
      }
    }
  }
}
