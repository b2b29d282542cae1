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
 *
 * Layout (wireguard-go's cut): this file holds configuration, outputs and queries;
 * send.ts the send path, receive.ts the receive path, timer-actions.ts what expired
 * timers do, core.ts the shared state. Timer deadlines live in a heap (deadlines.ts):
 * `nextDeadline()` re-files only the peers whose timers changed.
 */
import { constantTimeEqual } from "@lattice/crypto";
import type { DeviceSnapshot, DeviceUpdate, Endpoint, OutgoingDatagram, PeerSnapshot, PeerUpdate } from "./api.js";
import { DEFAULT_MTU, MAX_SAFE_COUNTER } from "./constants.js";
import { CookieChecker } from "./cookie.js";
import { DeviceCore } from "./core.js";
import type { Keypair } from "./keypair.js";
import { noiseKeyPair } from "./noise.js";
import type { Peer } from "./peer.js";
import { openTransport, receiveDatagram } from "./receive.js";
import { restartHandshake, sealTransport, sendKeepalive, sendPackets, sendStaged } from "./send.js";
import type { DeviceStats } from "./stats.js";
import { runDueTimers } from "./timer-actions.js";

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
  /**
   * Roaming (whitepaper §2.1; wireguard-go SetEndpointFromPacket): when true (the default),
   * every authenticated packet moves its peer's endpoint to the packet's outer source.
   * False = a peer's endpoint changes only by configuration, never from packets (also not
   * when it has none yet). magicsock runs with false, as Tailscale disables wireguard-go's
   * roaming: the endpoint is a "magic" one that magicsock maps to the best path, and a
   * packet arriving over DERP or from one candidate address must not pin the peer there.
   */
  roaming?: boolean;
}

/** A received datagram, for {@link Device.receiveDatagrams}. */
export interface IncomingDatagram {
  readonly data: Uint8Array;
  readonly from: Endpoint;
}

/** A WireGuard interface without I/O. See the file comment for the calling convention. */
export class Device {
  private readonly c: DeviceCore;

  constructor(opts: DeviceOptions) {
    this.c = new DeviceCore({
      now: opts.now,
      wallNow: opts.wallNow ?? Date.now,
      random: opts.random,
      mtu: opts.mtu ?? DEFAULT_MTU,
      underLoad: opts.underLoad,
      roaming: opts.roaming ?? true,
    });
  }

  /** Inner MTU for padding. */
  get mtu(): number {
    return this.c.mtu;
  }

  set mtu(v: number) {
    this.c.mtu = v;
  }

  // ───────────────────────────── configuration ─────────────────────────────

  /** Our static public key, or null without a private key. */
  get publicKey(): Uint8Array | null {
    const c = this.c;
    return c.staticKeys ? Uint8Array.from(c.staticKeys.publicKey) : null;
  }

  /** Applies a validated UAPI `set=1` request (wireguard-go semantics). */
  applyConfig(u: DeviceUpdate): void {
    const c = this.c;
    if (u.privateKey !== undefined) this.setPrivateKey(u.privateKey);
    const portChanged = u.listenPort !== undefined && u.listenPort !== c.listenPort && c.listenPort !== 0;
    if (u.listenPort !== undefined) c.listenPort = u.listenPort;
    if (u.fwmark !== undefined) c.fwmark = u.fwmark;
    if (u.replacePeers) for (const p of [...c.peers.values()]) c.removePeer(p);
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
    const c = this.c;
    if (!c.up) return;
    const now = c.now();
    for (const p of c.peers.values()) {
      if (p.handshake.state === "initiationCreated") restartHandshake(c, p);
      else if (c.usableForSending(p.keypairs.current, now)) sendKeepalive(c, p);
    }
  }

  private applyPeer(pu: PeerUpdate): void {
    const c = this.c;
    // A peer with our own public key is ignored, as wireguard-go does.
    if (c.staticKeys && constantTimeEqual(pu.publicKey, c.staticKeys.publicKey)) return;
    const id = Buffer.from(pu.publicKey).toString("hex");
    let peer = c.peers.get(id);
    if (pu.remove) {
      if (peer) c.removePeer(peer);
      return;
    }
    if (!peer) {
      if (pu.updateOnly) return;
      peer = c.newPeer(Uint8Array.from(pu.publicKey), id);
      peer.precompute(c.privateKey);
      c.peers.set(id, peer);
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
    if (pu.replaceAllowedIps) c.allowed.removeByValue(peer);
    for (const ip of pu.allowedIps) c.allowed.insert(ip, peer);
    if (c.up) {
      // An initiation in flight went to the old address: send a new one there now rather
      // than after the REKEY_TIMEOUT retry (the kernel and wireguard-go wait for the retry).
      if (endpointMoved && peer.handshake.state === "initiationCreated") restartHandshake(c, peer);
      if (pkaTurnedOn) sendKeepalive(c, peer);
      else sendStaged(c, peer);
    }
  }

  private setPrivateKey(key: Uint8Array | null): void {
    const c = this.c;
    if (key !== null && c.privateKey !== null && constantTimeEqual(key, c.privateKey)) return;
    // The replaced key is zeroed (and the clamped copy of it the handshakes used).
    c.privateKey?.fill(0);
    c.staticKeys?.privateKey.fill(0);
    c.privateKey = key === null ? null : Uint8Array.from(key);
    if (key === null) {
      c.staticKeys = null;
      c.cookieChecker = null;
    } else {
      c.staticKeys = noiseKeyPair(key);
      c.cookieChecker = new CookieChecker(c.staticKeys.publicKey, c.random);
      // Peers whose public key is now our own are removed (wireguard-go SetPrivateKey).
      const own = c.staticKeys.publicKey;
      for (const p of [...c.peers.values()]) if (constantTimeEqual(p.publicKey, own)) c.removePeer(p);
    }
    for (const p of c.peers.values()) {
      p.precompute(c.privateKey === null ? null : c.staticKeys!.privateKey);
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
    const c = this.c;
    c.clearHandshake(p);
    p.handshake.lastSentHandshake = -Infinity;
    if (p.keypairs.current) p.keypairs.current.sendNonce = MAX_SAFE_COUNTER;
    if (p.keypairs.next) p.keypairs.next.sendNonce = MAX_SAFE_COUNTER;
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
    const c = this.c;
    if (up === c.up) return;
    c.up = up;
    for (const p of c.peers.values()) {
      if (!up) {
        c.zeroAndFlush(p);
        p.timers.stopAll();
        continue;
      }
      p.handshake.lastSentHandshake = -Infinity;
      if (p.timers.persistentKeepaliveInterval > 0) sendKeepalive(c, p);
    }
  }

  /** Whether the device is up (see {@link setUp}). */
  get isUp(): boolean {
    const c = this.c;
    return c.up;
  }

  /** The configuration and counters as UAPI `get=1` reports them. */
  snapshot(): DeviceSnapshot {
    const c = this.c;
    const peers: PeerSnapshot[] = [];
    for (const p of c.peers.values()) {
      const ms = p.lastHandshakeWallMs;
      const sec = Math.floor(ms / 1000);
      peers.push({
        publicKey: Uint8Array.from(p.publicKey),
        presharedKey: p.presharedKey.every((b) => b === 0) ? null : Uint8Array.from(p.presharedKey),
        endpoint: p.endpoint,
        persistentKeepaliveInterval: p.timers.persistentKeepaliveInterval / 1000,
        allowedIps: c.allowed.entriesFor(p),
        lastHandshakeTimeSec: sec,
        lastHandshakeTimeNsec: Math.round((ms - sec * 1000) * 1e6),
        rxBytes: BigInt(p.rxBytes),
        txBytes: BigInt(p.txBytes),
        protocolVersion: 1,
      });
    }
    return { privateKey: c.privateKey ? Uint8Array.from(c.privateKey) : null, listenPort: c.listenPort, fwmark: c.fwmark, peers };
  }

  /** A copy of the device counters and per-reason drop counts. */
  stats(): DeviceStats {
    const c = this.c;
    return { ...c.counters, drops: { ...c.counters.drops } };
  }

  /** The public key of the peer whose allowed IPs hold `addr` (4 or 16 bytes), if any. */
  peerForAddress(addr: Uint8Array): Uint8Array | undefined {
    const c = this.c;
    const p = c.allowed.lookup(addr);
    return p ? Uint8Array.from(p.publicKey) : undefined;
  }

  /**
   * Marks the device under load until `until` (monotonic ms): handshakes then need a valid
   * mac2 (else they get a cookie reply) and are rate-limited per source IP.
   */
  setUnderLoadUntil(until: number): void {
    const c = this.c;
    c.underLoadUntil = until;
  }

  // ───────────────────────────── outputs ─────────────────────────────

  /** Datagrams produced since the last call, in order. */
  takeDatagrams(): OutgoingDatagram[] {
    const d = this.c.outDatagrams;
    this.c.outDatagrams = [];
    return d;
  }

  /** Decrypted inner packets produced since the last call, for the TUN. */
  takePackets(): Uint8Array[] {
    const d = this.c.outPackets;
    this.c.outPackets = [];
    return d;
  }

  /** The earliest pending timer (monotonic ms), or undefined. */
  nextDeadline(): number | undefined {
    this.c.fileDeadlines();
    return this.c.deadlines.peekKey();
  }

  // ───────────────────────────── send path (send.ts) ─────────────────────────────

  /** Encrypts and sends one inner packet from the TUN (or stages it and starts a handshake). */
  sendPacket(packet: Uint8Array): void {
    sendPackets(this.c, [packet]);
  }

  /** As sendPacket for a batch: each peer's packets are flushed once. */
  sendPackets(batch: readonly Uint8Array[]): void {
    sendPackets(this.c, batch);
  }

  /** Seals one inner packet into a complete transport message (the AEAD seam). */
  sealTransport(kp: Keypair, pkt: Uint8Array): Uint8Array {
    return sealTransport(this.c, kp, pkt);
  }

  // ───────────────────────────── receive path (receive.ts) ─────────────────────────────

  /** Handles one UDP payload received from `from`. Never throws on hostile input. */
  receiveDatagram(data: Uint8Array, from: Endpoint): void {
    receiveDatagram(this.c, data, from);
  }

  /** Handles a batch of received datagrams (packets for the TUN accumulate in order). */
  receiveDatagrams(batch: readonly IncomingDatagram[]): void {
    for (const d of batch) receiveDatagram(this.c, d.data, d.from);
  }

  /** Opens a transport message in place; returns the plaintext length or −1 (the AEAD seam). */
  openTransport(kp: Keypair, data: Uint8Array, counter: number | bigint): number {
    return openTransport(this.c, kp, data, counter);
  }

  // ───────────────────────────── timers (timer-actions.ts) ─────────────────────────────

  /** Runs every timer due at `now()`. */
  tick(): void {
    runDueTimers(this.c);
  }
}
