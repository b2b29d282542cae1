/**
 * MagicSock: the WireGuard device's {@link Bind} when it runs in a tailnet (Tailscale's
 * wgengine/magicsock.Conn). One UDP socket carries WireGuard, disco and STUN; DERP legs
 * reach peers without a direct path; the sans-IO {@link MagicCore} picks each datagram's
 * path. The device is configured with {@link peerEndpoint} ("magic" endpoints); send()
 * maps them to the best path, and plain endpoints go out as plain UDP. Received
 * WireGuard is delivered with its real UDP source, or the DERP pseudo-endpoint
 * 127.3.3.40:<region> when it came over DERP (run the device with `roaming: false`).
 */
import { x25519PublicKey } from "@lattice/crypto";
import { looksLikeDisco } from "@lattice/disco";
import { Endpoint } from "@lattice/netaddr";
import type { DERPMap } from "@lattice/types";
import { UdpBind } from "@lattice/udp";
import type { Bind, BindReceiver } from "@lattice/wireguard";
import { derpEndpoint, derpRegionOf, magicId } from "./addr.js";
import type { MagicLog, MagicPeer, NetcheckReport, PeerPath, PingResult } from "./api.js";
import { MagicCore, ROUTE_DERP, ROUTE_UDP } from "./core.js";
import { type DialDerp, defaultDialDerp, DerpLegs } from "./derp-legs.js";
import { handleDisco } from "./disco-handlers.js";
import { MagicSockError } from "./errors.js";
import { Discovery } from "./discovery.js";
import type { PeerState } from "./peer.js";

/** Options (see MAGICSOCK-API.md); fields after onHomeDerp are Lattice additions for tests and labs. */
export interface MagicSockOptions {
  now: () => number;
  random: (n: number) => Uint8Array;
  log: MagicLog;
  discoPrivate: Uint8Array;
  createUdp?: () => Bind;
  dialDerp?: DialDerp;
  onEndpoints?: (endpoints: string[]) => void;
  onHomeDerp?: (regionId: number) => void;
  /** Interface addresses to advertise (default: {@link localAddresses}). */
  localAddresses?: () => string[];
  /** Resolves a DERP/STUN host name to addresses (default: dns.lookup, all). */
  resolveHost?: (host: string) => Promise<string[]>;
}

/** send() route codes besides the ROUTE_* bits. */
/** Candidate endpoints a datagram is copied to when neither a direct path nor its relay is up. */
const MAX_BLIND_SENDS = 8;
const PLAIN = -1;
/** Route bit (beside ROUTE_UDP / ROUTE_DERP): copy to the peer's candidates, unverified. */
const BLIND = 4;
const DROP = -2;
const unknownPeer = (k: Uint8Array): MagicSockError =>
  new MagicSockError("ERR_MAGICSOCK_UNKNOWN_PEER", `node key ${Buffer.from(k).toString("hex").slice(0, 16)}… is not a peer`);
const isWireGuard = (d: Uint8Array): boolean => d.length >= 4 && d[0]! >= 1 && d[0]! <= 4 && d[1] === 0 && d[2] === 0 && d[3] === 0;
const isStun = (d: Uint8Array): boolean => d.length >= 20 && (d[0]! & 0xc0) === 0 && d[4] === 0x21 && d[5] === 0x12 && d[6] === 0xa4 && d[7] === 0x42;

export class MagicSock implements Bind {
  readonly #o: MagicSockOptions;
  readonly #core: MagicCore;
  readonly #disc: Discovery;
  readonly #legs: DerpLegs;
  #udp: Bind | null = null;
  #receiver: BindReceiver | null = null;
  #nodeKey: Uint8Array | null = null;
  #mapJson = "";
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  readonly #derpEps = new Map<number, Endpoint>();
  // Reused batch arrays (no allocation per datagram on the data path).
  readonly #ud: Uint8Array[] = [];
  readonly #ut: Endpoint[] = [];
  readonly #wd: Uint8Array[] = [];
  readonly #wf: Endpoint[] = [];
  readonly #one: [Uint8Array[], Endpoint[]] = [[], []];

  /** Throws MagicSockError ERR_MAGICSOCK_BAD_KEY when discoPrivate is not 32 bytes. */
  constructor(opts: MagicSockOptions) {
    this.#o = opts;
    this.#core = new MagicCore({ random: opts.random, discoPrivate: opts.discoPrivate, log: opts.log });
    this.#legs = new DerpLegs({
      dial: opts.dialDerp ?? defaultDialDerp, random: opts.random, now: opts.now, log: opts.log, stats: this.#core.stats,
      onPacket: (r, s, d) => this.#onDerp(r, s, d),
    });
    this.#disc = new Discovery({
      now: opts.now, random: opts.random, log: opts.log, core: this.#core, legs: this.#legs,
      localAddresses: opts.localAddresses, resolveHost: opts.resolveHost, onEndpoints: opts.onEndpoints, onHomeDerp: opts.onHomeDerp,
      udp: () => this.#udp, flush: () => this.#flush(), schedule: () => this.#schedule(),
    });
  }

  /** Our disco public key (latticed reports it to control as Node.DiscoKey). */
  get discoPublic(): Uint8Array {
    return this.#core.discoPublic;
  }

  // ---- Bind ----

  open(port: number, receiver: BindReceiver): number {
    if (this.#closed || this.#udp !== null) throw new MagicSockError("ERR_MAGICSOCK_CLOSED", "MagicSock can be opened once");
    const udp = (this.#o.createUdp ?? (() => new UdpBind()))();
    const bound = udp.open(port, { onReceive: (d, f, n) => this.#onUdp(d, f, n), onError: (e) => receiver.onError(e) });
    this.#udp = udp;
    this.#receiver = receiver;
    this.#disc.refreshEndpoints();
    this.#disc.startStun();
    this.#schedule();
    return bound;
  }

  get port(): number {
    return this.#udp?.port ?? 0;
  }

  describe(): string {
    return `magicsock (${this.#udp?.describe() ?? "UDP closed"}; DERP home ${this.#disc.nc.home || "none"})`;
  }

  describeStats(): string {
    const s = this.#core.stats;
    return `${this.#udp?.describeStats() ?? "udp closed"}; direct ${s.sendDirect} derp ${s.sendDerp} tx, derp rx ${s.derpRecvWireGuard}, disco rx ${s.udpRecvDisco + s.derpRecvDisco}, garbage ${s.dropUdpGarbage}`;
  }

  setMark(mark: number): void {
    this.#udp?.setMark(mark);
  }

  /**
   * Sends `datagrams[i]` to `to[i]`: magic endpoints by their peer's path (trusted direct
   * → UDP; else last direct path and/or DERP), others as plain UDP, in one UDP batch.
   * Returns `count` minus the datagrams dropped (no peer, no path, refused by UDP).
   */
  send(datagrams: readonly Uint8Array[], to: readonly Endpoint[], count: number): number {
    const udp = this.#udp;
    if (udp === null) throw new MagicSockError("ERR_MAGICSOCK_CLOSED", "MagicSock is not open");
    const core = this.#core;
    const s = core.stats;
    const now = this.#o.now();
    const ud = this.#ud;
    const ut = this.#ut;
    let n = 0;
    let dropped = 0;
    // Consecutive datagrams to the same endpoint object (the device batches per peer)
    // share one classification, one peer lookup and one path decision.
    let lastEp: Endpoint | null = null;
    let st: PeerState | undefined;
    let route = 0; // PLAIN, DROP, or ROUTE_UDP | ROUTE_DERP | BLIND bits
    let direct = 0;
    let why: "dropSendDerpPseudo" | "dropSendUnknownPeer" | "dropSendNoPath" = "dropSendNoPath";
    for (let i = 0; i < count; i++) {
      const ep = to[i]!;
      const d = datagrams[i]!;
      if (ep !== lastEp) {
        lastEp = ep;
        st = undefined;
        const id = magicId(ep.bytes);
        if (id === 0) {
          if (derpRegionOf(ep.bytes) !== 0) {
            why = "dropSendDerpPseudo";
            route = DROP;
          } else route = PLAIN;
        } else {
          st = core.peerById(id);
          if (st === undefined) {
            why = "dropSendUnknownPeer";
            route = DROP;
          } else {
            route = core.route(st, now);
            if (route === 0 && st.cands.size > 0) route = BLIND;
            else if (route === 0) {
              why = "dropSendNoPath";
              route = DROP;
            }
          }
        }
      }
      if (route === PLAIN) {
        ud[n] = d;
        ut[n++] = ep;
      } else if (route === DROP) {
        s[why]++;
        dropped++;
      } else {
        if ((route & ROUTE_UDP) !== 0) {
          ud[n] = d;
          ut[n++] = st!.best!.ep;
          direct++;
        }
        let sent = false;
        if ((route & ROUTE_DERP) !== 0) {
          s.sendDerp++;
          const region = st!.derpRegion();
          const up = this.#legs.isUp(region);
          sent = this.#legs.send(region, st!.nodeKey, d);
          if (!up && (route & ROUTE_UDP) === 0) route |= BLIND;
        }
        if ((route & BLIND) !== 0) {
          // No verified path and no relay up (control/DERP down, a restart from the saved
          // netmap, no DERP map): copy to the peer's candidate endpoints, as Tailscale's
          // addrForWireGuardSendLocked does without DERP, so a handshake is not lost until
          // the 5 s retry while disco verifies a path.
          let k = 0;
          for (const c of st!.cands.values()) {
            if (k++ === MAX_BLIND_SENDS) break;
            ud[n] = d;
            ut[n++] = c.ep;
            s.sendBlind++;
            sent = true;
          }
        }
        if (!sent && (route & ROUTE_UDP) === 0) dropped++;
      }
    }
    s.sendDirect += direct;
    const ok = n > 0 ? udp.send(ud, ut, n) : 0;
    this.#flush();
    return Math.max(0, count - dropped - (n - ok));
  }

  get lastSendError(): string | undefined {
    return this.#udp?.lastSendError;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#udp?.close();
    this.#legs.close();
    this.#disc.close();
  }

  // ---- tailnet API ----

  /** DERP login identity; redials DERP when it changes. Throws ERR_MAGICSOCK_BAD_KEY unless 32 bytes. */
  setNodePrivateKey(k: Uint8Array): void {
    if (k.length !== 32) throw new MagicSockError("ERR_MAGICSOCK_BAD_KEY", `node private key must be 32 bytes, got ${k.length}`);
    if (this.#nodeKey !== null && Buffer.compare(this.#nodeKey, k) === 0) return;
    this.#nodeKey = Uint8Array.from(k);
    this.#core.setNodePublic(x25519PublicKey(k));
    this.#legs.setKey(this.#nodeKey);
  }

  /** New DERP map: STUN targets are resolved and a netcheck round chooses the home region (an identical map is ignored). */
  setDerpMap(m: DERPMap): void {
    const json = JSON.stringify(m);
    if (json === this.#mapJson) return; // same map again (every netmap carries it)
    this.#mapJson = json;
    this.#legs.setMap(m);
    this.#disc.setDerpMap(m);
  }

  /** The whole peer set of a netmap (removed peers are forgotten). Throws ERR_MAGICSOCK_BAD_PEER for bad keys. */
  setPeers(peers: readonly MagicPeer[]): void {
    this.#core.setPeers(peers, this.#o.now());
    this.#flush();
  }

  /** The endpoint to configure for this peer in the device. Throws ERR_MAGICSOCK_UNKNOWN_PEER. */
  peerEndpoint(nodeKey: Uint8Array): Endpoint {
    return this.#peer(nodeKey).magic;
  }

  /**
   * Disco ping like `tailscale ping`: over the trusted direct path, else over DERP and
   * every candidate; the first pong answers. Rejects with ERR_MAGICSOCK_UNKNOWN_PEER,
   * ERR_MAGICSOCK_PING_TIMEOUT (no pong in `timeoutMs`, or the peer has no disco key/path).
   */
  ping(nodeKey: Uint8Array, timeoutMs: number): Promise<PingResult> {
    const st = this.#core.peerByKey(nodeKey);
    if (st === undefined) return Promise.reject(unknownPeer(nodeKey));
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        reject(new MagicSockError("ERR_MAGICSOCK_PING_TIMEOUT", `no pong within ${timeoutMs} ms`));
      }, timeoutMs);
      const ok = this.#core.userPing(st, this.#o.now(), (latencyMs, endpoint, derpRegionId) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ latencyMs, endpoint, derpRegionId });
      });
      this.#flush();
      if (!ok) {
        done = true;
        clearTimeout(timer);
        reject(new MagicSockError("ERR_MAGICSOCK_PING_TIMEOUT", "peer has no disco key or no path to ping"));
      }
    });
  }

  peerPath(nodeKey: Uint8Array): PeerPath | undefined {
    const st = this.#core.peerByKey(nodeKey);
    return st === undefined ? undefined : this.#core.peerPath(st, this.#o.now());
  }

  endpoints(): string[] {
    return [...this.#disc.endpoints];
  }

  homeDerp(): number {
    return this.#disc.nc.home;
  }

  /** Runs (or joins) a STUN round and returns its report. */
  netcheck(): Promise<NetcheckReport> {
    return this.#disc.netcheck();
  }

  stats(): Record<string, number> {
    return { ...this.#core.stats, derpRegionsConnected: this.#legs.connected().length };
  }

  /** Regions with a live DERP connection (status, tests). */
  derpConnected(): number[] {
    return this.#legs.connected();
  }

  // ---- internals ----

  #peer(nodeKey: Uint8Array) {
    const st = this.#core.peerByKey(nodeKey);
    if (st === undefined) throw unknownPeer(nodeKey);
    return st;
  }

  #onUdp(data: readonly Uint8Array[], from: readonly Endpoint[], n: number): void {
    const core = this.#core;
    const s = core.stats;
    const now = this.#o.now();
    let plain = true;
    for (let i = 0; i < n && plain; i++) plain = isWireGuard(data[i]!);
    let last: Endpoint | null = null;
    if (plain) {
      for (let i = 0; i < n; i++) {
        if (from[i] === last) continue;
        last = from[i]!;
        const st = core.peerForAddr(last);
        if (st !== null) st.lastRecv = now;
      }
      s.udpRecvWireGuard += n;
      this.#receiver?.onReceive(data, from, n);
      return;
    }
    const wd = this.#wd;
    const wf = this.#wf;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const d = data[i]!;
      const f = from[i]!;
      if (isWireGuard(d)) {
        if (f !== last) {
          last = f;
          const st = core.peerForAddr(f);
          if (st !== null) st.lastRecv = now;
        }
        wd[m] = d;
        wf[m++] = f;
      } else if (looksLikeDisco(d)) {
        s.udpRecvDisco++;
        this.#guard(() => handleDisco(core, d, f, 0, null, now));
      } else if (isStun(d)) {
        s.udpRecvStun++;
        this.#guard(() => this.#disc.handleStun(d, f, now));
      } else s.dropUdpGarbage++;
    }
    s.udpRecvWireGuard += m;
    if (m > 0) this.#receiver?.onReceive(wd, wf, m);
    this.#flush();
  }

  #onDerp(region: number, src: Uint8Array, data: Uint8Array): void {
    const core = this.#core;
    const now = this.#o.now();
    if (looksLikeDisco(data)) {
      core.stats.derpRecvDisco++;
      this.#guard(() => handleDisco(core, data, null, region, src, now));
      this.#flush();
      return;
    }
    core.stats.derpRecvWireGuard++;
    const st = core.peerByKey(src);
    if (st !== undefined) core.noteRecv(st, now, region);
    else core.stats.derpRecvUnknownPeer++;
    let ep = this.#derpEps.get(region);
    if (ep === undefined) this.#derpEps.set(region, (ep = derpEndpoint(region)));
    const [d, f] = this.#one;
    d[0] = data;
    f[0] = ep;
    this.#receiver?.onReceive(d, f, 1);
    this.#flush();
  }

  /** Runs a control-plane handler; a bug in it is counted and logged, never thrown into the socket's callback. */
  #guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.#core.stats.internalErrors++;
      this.#o.log.warn({ err: (e as Error).message }, "magicsock: internal error handling a packet (dropped)");
    }
  }

  #flush(): void {
    const core = this.#core;
    const udp = this.#udp;
    if (core.udpOut.length > 0) {
      const out = core.udpOut;
      core.udpOut = [];
      if (udp !== null) udp.send(out.map((o) => o.data), out.map((o) => o.to), out.length);
    }
    if (core.derpOut.length > 0) {
      const out = core.derpOut;
      core.derpOut = [];
      for (const o of out) this.#legs.send(o.region, o.dst, o.data);
    }
    if (core.stunWanted) {
      core.stunWanted = false;
      this.#disc.startStun();
    }
    if (core.deadlineChanged) this.#schedule();
  }

  #onTimer(): void {
    this.#timer = null;
    if (this.#closed) return;
    const now = this.#o.now();
    this.#core.tick(now);
    this.#disc.onTimer(now);
    this.#legs.closeIdle(now);
    this.#flush();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#core.deadlineChanged = false;
    const now = this.#o.now();
    let at = Math.min(this.#core.nextDeadline(), now + 5_000);
    at = Math.min(at, this.#disc.nextDeadline());
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, at - now));
    this.#timer.unref?.();
  }
}
