/**
 * Sans-IO DERP server core (after Tailscale's derpserver): login, a registry of clients
 * by node key, per-client bounded send queues with drop-on-overflow, PeerGone /
 * PeerPresent, WatchConns and ForwardPacket for meshed relays (mesh key), ClosePeer,
 * NotePreferred, Ping/Pong, KeepAlive, Health, Restarting, and an admission hook for
 * `--verify-clients`. The edge owns sockets and the clock: it feeds bytes with
 * {@link ServerConn.receive}, writes what {@link ServerConn.pull} returns when told to
 * by `sink.wake()`, reports backpressure with {@link ServerConn.setWriteBlocked}, and
 * calls {@link DerpServer.tick} at {@link DerpServer.nextDeadline}. Hostile input never
 * throws: it is counted in {@link DerpServer.stats} and the connection is closed.
 */
import { x25519PublicKey } from "@lattice/crypto";
import { FrameType, KEEP_ALIVE_MS, KEY_LEN, MAX_PACKET_SIZE, MAX_PING_LEN, MAX_SERVER_READ_FRAME, PeerGoneReason, PeerPresentFlags, PING_LEN } from "./constants.js";
import { DerpProtocolError, type DerpProtocolErrorCode } from "./errors.js";
import { encodeHealth, encodeKeepAlive, encodePeerGone, encodePeerPresent, encodePong, encodeRecvPacket, encodeRestarting, encodeServerKey, FrameDecoder, type Frame } from "./frames.js";
import { encodeServerInfo, parseClientInfo, type ClientInfo, type RandomBytes } from "./handshake.js";
import { keyEqual, keyId } from "./keys.js";
import { DeadlineHeap, Fifo } from "./queue.js";

/** Where a connection came from: 16-byte IP (IPv4 as ::ffff:a.b.c.d) and port. */
export interface RemoteAddr {
  readonly ip16: Uint8Array;
  readonly port: number;
}

/** The edge's side of one connection. */
export interface ConnSink {
  /** There is output to {@link ServerConn.pull}; called at most once until pull returns null. */
  wake(): void;
  /** Close the socket (the core has already unregistered the connection). */
  close(reason: string): void;
}

/** Carries packets to a client homed on another relay of the mesh. */
export interface MeshForwarder {
  /** Sends ForwardPacket(src, dst, packet); drops (and counts) when its own queue is full. */
  forward(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): void;
}

/** The admission decision the edge asks for (`--verify-clients`). */
export interface AdmissionRequest {
  readonly clientKey: Uint8Array;
  readonly info: ClientInfo;
  readonly remote: RemoteAddr;
}

/** Server options; times in milliseconds. */
export interface DerpServerOptions {
  /** Server's Curve25519 private key (32 bytes). */
  readonly privateKey: Uint8Array;
  readonly random: RandomBytes;
  /** Monotonic clock in ms. */
  readonly now: () => number;
  /** Pre-shared mesh key (32 bytes): clients presenting it may WatchConns/ForwardPacket/ClosePeer. */
  readonly meshKey?: Uint8Array | null;
  /** Packets queued per client before the oldest is dropped (Tailscale: 32). */
  readonly queueDepth?: number;
  /** Control frames (PeerGone, Pong, …) queued per ordinary client before it is closed (default 256). */
  readonly controlQueueLimit?: number;
  /** Control frames queued per mesh watcher before it is closed (default 1<<16). */
  readonly watcherQueueLimit?: number;
  /** Registered clients at most (default 100 000); more are closed with "server full". */
  readonly maxClients?: number;
  /** Login must finish within this (default 10 000, as Tailscale). */
  readonly handshakeTimeoutMs?: number;
  /** A connection whose writes stay blocked this long is closed (default 5 000). */
  readonly writeTimeoutMs?: number;
  /** KeepAlive interval before jitter (default 60 000). */
  readonly keepAliveMs?: number;
  /** Bytes a client may send while admission is pending (default 64 KiB). */
  readonly maxPendingBytes?: number;
  /**
   * Admission hook for ordinary (non-mesh) clients. When set, login pauses after
   * ClientInfo until the edge calls {@link ServerConn.admit}.
   */
  readonly admit?: (conn: ServerConn, req: AdmissionRequest) => void;
}

/** Counters; names are stable (exported as metrics). */
export interface DerpServerStats {
  accepts: number;
  loginsOk: number;
  admissionsRejected: number;
  currentClients: number;
  homeClients: number;
  watchers: number;
  packetsRecv: number;
  bytesRecv: number;
  packetsQueued: number;
  packetsForwardedOut: number;
  packetsForwardedIn: number;
  dropUnknownDest: number;
  dropQueueHead: number;
  dropGone: number;
  unknownFrames: number;
  pingsIgnored: number;
  peerGoneSent: number;
  closedProtocolError: number;
  closedHandshakeTimeout: number;
  closedWriteTimeout: number;
  closedControlOverflow: number;
  closedServerFull: number;
  closedByPeer: number;
  protocolErrors: Record<string, number>;
}

type State = "login" | "admitting" | "active" | "closed";

/** One client connection's core. */
export class ServerConn {
  /** Node key once ClientInfo was read. */
  clientKey: Uint8Array | null = null;
  info: ClientInfo | null = null;
  canMesh = false;
  preferred = false;
  state: State = "login";
  private readonly decoder = new FrameDecoder(MAX_SERVER_READ_FRAME);
  private readonly control = new Fifo<Uint8Array>();
  private readonly packets = new Fifo<Uint8Array>();
  private pending: Frame[] = [];
  private pendingBytes = 0;
  private awake = false;
  private blockedSince: number | null = null;
  private nextKeepAlive = 0;
  private readonly loginDeadline: number;
  private peerGoneTokens = 3;
  private peerGoneRefill: number;
  watching = false;

  constructor(
    private readonly s: DerpServer,
    readonly remote: RemoteAddr,
    private readonly sink: ConnSink,
    now: number,
  ) {
    this.loginDeadline = now + s.handshakeTimeoutMs;
    this.peerGoneRefill = now;
  }

  /** Feeds bytes read from the socket. Never throws on their content. */
  receive(bytes: Uint8Array): void {
    if (this.state === "closed") return;
    const r = this.decoder.push(bytes);
    if (!r.ok) return this.fail(r.error);
    for (const f of r.frames) {
      if ((this.state as State) === "closed") return;
      if (this.state === "admitting") {
        this.pendingBytes += f.payload.length + 5;
        if (this.pendingBytes > this.s.maxPendingBytes) return this.fail(new DerpProtocolError("ERR_DERP_BUFFER_LIMIT", `over ${this.s.maxPendingBytes} bytes sent before admission`));
        this.pending.push(f);
        continue;
      }
      this.s.handleFrame(this, f);
    }
  }

  /** Next frame to write (control frames first), or null when idle. */
  pull(): Uint8Array | null {
    const f = this.control.shift() ?? this.packets.shift() ?? null;
    if (f === null) this.awake = false;
    return f;
  }

  /** Control frames waiting to be written. */
  pendingControl(): number {
    return this.control.length;
  }

  /** The edge reports socket backpressure (true) or drain (false). */
  setWriteBlocked(blocked: boolean): void {
    if (this.state === "closed") return;
    if (blocked && this.blockedSince === null) {
      this.blockedSince = this.s.now();
      this.s.schedule(this, this.blockedSince + this.s.writeTimeoutMs);
    } else if (!blocked) this.blockedSince = null;
  }

  /** The admission answer for a pending login; `reason` is logged by the edge. */
  admit(ok: boolean, reason = "not admitted"): void {
    if (this.state !== "admitting") return;
    if (!ok) {
      this.s.stats.admissionsRejected++;
      this.close(`admission: ${reason}`);
      return;
    }
    this.s.activate(this);
    const pending = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const f of pending) {
      if ((this.state as State) !== "active") return;
      this.s.handleFrame(this, f);
    }
  }

  /** The socket closed (peer hang-up or error). */
  closedByPeer(): void {
    if (this.state === "closed") return;
    this.s.stats.closedByPeer++;
    this.teardown();
  }

  /** Closes from the server side, telling the sink. */
  close(reason: string): void {
    if (this.state === "closed") return;
    this.teardown();
    this.sink.close(reason);
  }

  /** @internal */
  fail(e: DerpProtocolError): void {
    this.s.stats.closedProtocolError++;
    const c = this.s.stats.protocolErrors;
    c[e.code] = (c[e.code] ?? 0) + 1;
    this.close(`${e.code}: ${e.message}`);
  }

  /** @internal */
  enqueueControl(frame: Uint8Array): void {
    if (this.state === "closed") return;
    const limit = this.watching ? this.s.watcherQueueLimit : this.s.controlQueueLimit;
    if (this.control.length >= limit) {
      this.s.stats.closedControlOverflow++;
      this.close("control queue overflow");
      return;
    }
    this.control.push(frame);
    this.wake();
  }

  /** @internal Queue a packet; drop the oldest when full (fresher packets win, as Tailscale). */
  enqueuePacket(frame: Uint8Array): void {
    if (this.state !== "active") {
      this.s.stats.dropGone++;
      return;
    }
    if (this.packets.length >= this.s.queueDepth) {
      this.packets.shift();
      this.s.stats.dropQueueHead++;
    }
    this.packets.push(frame);
    this.s.stats.packetsQueued++;
    this.wake();
  }

  /** @internal Rate-limited PeerGone(NotHere): 3 burst, 1 per second. */
  peerGoneNotHere(dst: Uint8Array, now: number): void {
    const refill = Math.floor((now - this.peerGoneRefill) / 1000);
    if (refill > 0) {
      this.peerGoneTokens = Math.min(3, this.peerGoneTokens + refill);
      this.peerGoneRefill = now;
    }
    if (this.peerGoneTokens <= 0) return;
    this.peerGoneTokens--;
    this.s.stats.peerGoneSent++;
    this.enqueueControl(encodePeerGone(dst, PeerGoneReason.NotHere));
  }

  /** @internal */
  setLoggedIn(clientKey: Uint8Array, info: ClientInfo, canMesh: boolean): void {
    this.clientKey = clientKey;
    this.info = info;
    this.canMesh = canMesh;
  }

  /** @internal Earliest time this connection needs {@link onTimer}. */
  due(): number {
    let d = this.state === "login" || this.state === "admitting" ? this.loginDeadline : this.nextKeepAlive;
    if (this.blockedSince !== null) d = Math.min(d, this.blockedSince + this.s.writeTimeoutMs);
    return d;
  }

  /** @internal */
  onTimer(now: number): void {
    if (this.state === "closed") return;
    if ((this.state === "login" || this.state === "admitting") && now >= this.loginDeadline) {
      this.s.stats.closedHandshakeTimeout++;
      this.close("login timed out");
      return;
    }
    if (this.blockedSince !== null && now >= this.blockedSince + this.s.writeTimeoutMs) {
      this.s.stats.closedWriteTimeout++;
      this.close("write timed out (slow reader)");
      return;
    }
    if (this.state === "active" && now >= this.nextKeepAlive) {
      this.enqueueControl(encodeKeepAlive());
      this.scheduleKeepAlive(now);
      return;
    }
    this.s.schedule(this, this.due());
  }

  /** @internal */
  scheduleKeepAlive(now: number): void {
    const jitter = (this.s.random(1)[0]! / 256) * (this.s.keepAliveMs / 10);
    this.nextKeepAlive = now + this.s.keepAliveMs + jitter;
    this.s.schedule(this, this.due());
  }

  private wake(): void {
    if (this.awake) return;
    this.awake = true;
    this.sink.wake();
  }

  private teardown(): void {
    const wasActive = this.state === "active";
    this.state = "closed";
    this.control.clear();
    this.packets.clear();
    this.pending = [];
    if (wasActive) this.s.unregister(this);
  }
}

/** The relay: registry, routing, mesh routes and timers. */
export class DerpServer {
  readonly publicKey: Uint8Array;
  readonly stats: DerpServerStats = {
    accepts: 0, loginsOk: 0, admissionsRejected: 0, currentClients: 0, homeClients: 0, watchers: 0, packetsRecv: 0, bytesRecv: 0,
    packetsQueued: 0, packetsForwardedOut: 0, packetsForwardedIn: 0, dropUnknownDest: 0, dropQueueHead: 0, dropGone: 0,
    unknownFrames: 0, pingsIgnored: 0, peerGoneSent: 0, closedProtocolError: 0, closedHandshakeTimeout: 0, closedWriteTimeout: 0,
    closedControlOverflow: 0, closedServerFull: 0, closedByPeer: 0, protocolErrors: {},
  };
  /** @internal */ readonly random: RandomBytes;
  /** @internal */ readonly now: () => number;
  /** @internal */ readonly queueDepth: number;
  /** @internal */ readonly controlQueueLimit: number;
  /** @internal */ readonly watcherQueueLimit: number;
  /** @internal */ readonly handshakeTimeoutMs: number;
  /** @internal */ readonly writeTimeoutMs: number;
  /** @internal */ readonly keepAliveMs: number;
  /** @internal */ readonly maxPendingBytes: number;
  private readonly privateKey: Uint8Array;
  private readonly meshKey: Uint8Array | null;
  private readonly maxClients: number;
  private readonly admitHook: DerpServerOptions["admit"];
  /** node key id → connections, newest last (the newest is the active one). */
  private readonly clients = new Map<string, ServerConn[]>();
  private readonly watchers = new Set<ServerConn>();
  /** node key id → forwarder to the relay it is homed on. */
  private readonly meshRoutes = new Map<string, MeshForwarder>();
  /** sender key id → recipients (local key ids) told PeerGone when the sender leaves. */
  private readonly sentTo = new Map<string, Set<string>>();
  private readonly timers = new DeadlineHeap<ServerConn>();

  constructor(opts: DerpServerOptions) {
    if (opts.privateKey.length !== KEY_LEN) throw new RangeError(`DERP private key must be ${KEY_LEN} bytes`);
    if (opts.meshKey && opts.meshKey.length !== KEY_LEN) throw new RangeError(`DERP mesh key must be ${KEY_LEN} bytes`);
    this.privateKey = opts.privateKey;
    this.publicKey = x25519PublicKey(opts.privateKey);
    this.random = opts.random;
    this.now = opts.now;
    this.meshKey = opts.meshKey ?? null;
    this.queueDepth = opts.queueDepth ?? 32;
    this.controlQueueLimit = opts.controlQueueLimit ?? 256;
    this.watcherQueueLimit = opts.watcherQueueLimit ?? 1 << 16;
    this.maxClients = opts.maxClients ?? 100_000;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    this.writeTimeoutMs = opts.writeTimeoutMs ?? 5_000;
    this.keepAliveMs = opts.keepAliveMs ?? KEEP_ALIVE_MS;
    this.maxPendingBytes = opts.maxPendingBytes ?? 64 << 10;
    this.admitHook = opts.admit;
  }

  /** True when a mesh key is configured. */
  get hasMeshKey(): boolean {
    return this.meshKey !== null;
  }

  /** A new TCP connection (after the HTTP upgrade): queues ServerKey and starts the login timer. */
  newConn(remote: RemoteAddr, sink: ConnSink): ServerConn {
    const now = this.now();
    const c = new ServerConn(this, remote, sink, now);
    this.stats.accepts++;
    this.schedule(c, c.due());
    c.enqueueControl(encodeServerKey(this.publicKey));
    return c;
  }

  /** Earliest time {@link tick} has work, or null. */
  nextDeadline(): number | null {
    return this.timers.peekTime();
  }

  /** Runs due timers: login timeouts, write timeouts, keep-alives. */
  tick(now = this.now()): void {
    for (let c = this.timers.popDue(now); c !== undefined; c = this.timers.popDue(now)) {
      if (c.state !== "closed" && c.due() <= now) c.onTimer(now);
    }
  }

  /** Registers (or replaces) the route to a node homed on a meshed relay. */
  addMeshRoute(peer: Uint8Array, fwd: MeshForwarder): void {
    this.meshRoutes.set(keyId(peer), fwd);
  }

  /** Removes a mesh route if it is still `fwd`'s; local receivers of the node are told PeerGone. */
  removeMeshRoute(peer: Uint8Array, fwd: MeshForwarder): void {
    const id = keyId(peer);
    if (this.meshRoutes.get(id) !== fwd) return;
    this.meshRoutes.delete(id);
    if (!this.clients.has(id)) this.notifyGone(peer, id);
  }

  /** Removes every route through `fwd` (its mesh connection broke). */
  removeMeshForwarder(fwd: MeshForwarder): void {
    for (const [id, f] of [...this.meshRoutes]) if (f === fwd) this.removeMeshRoute(Buffer.from(id, "hex"), fwd);
  }

  /** Tells every client the server is restarting (Restarting frame). */
  broadcastRestarting(reconnectInMs: number, tryForMs: number): void {
    const f = encodeRestarting(reconnectInMs, tryForMs);
    for (const set of this.clients.values()) for (const c of set) c.enqueueControl(f);
  }

  /** Closes every connection (shutdown). */
  closeAll(reason: string): void {
    for (const set of [...this.clients.values()]) for (const c of [...set]) c.close(reason);
  }

  /** Active-connection count for a node key (tests, metrics). */
  isConnected(key: Uint8Array): boolean {
    return this.clients.has(keyId(key));
  }

  /** @internal */
  schedule(c: ServerConn, at: number): void {
    this.timers.push(at, c);
  }

  /** @internal */
  handleFrame(c: ServerConn, f: Frame): void {
    if (c.state === "login") return this.login(c, f);
    const p = f.payload;
    const err = (code: DerpProtocolErrorCode, msg: string): void => c.fail(new DerpProtocolError(code, msg));
    switch (f.type) {
      case FrameType.SendPacket: {
        if (p.length < KEY_LEN) return err("ERR_DERP_BAD_FRAME", `SendPacket of ${p.length} bytes`);
        if (p.length - KEY_LEN > MAX_PACKET_SIZE) return err("ERR_DERP_FRAME_TOO_LARGE", `packet of ${p.length - KEY_LEN} bytes`);
        this.stats.packetsRecv++;
        this.stats.bytesRecv += p.length - KEY_LEN;
        return this.route(c, c.clientKey!, p.subarray(0, KEY_LEN), p.subarray(KEY_LEN), false);
      }
      case FrameType.ForwardPacket: {
        if (!c.canMesh) return err("ERR_DERP_FORBIDDEN", "ForwardPacket without the mesh key");
        if (p.length < 2 * KEY_LEN) return err("ERR_DERP_BAD_FRAME", `ForwardPacket of ${p.length} bytes`);
        if (p.length - 2 * KEY_LEN > MAX_PACKET_SIZE) return err("ERR_DERP_FRAME_TOO_LARGE", `forwarded packet of ${p.length - 2 * KEY_LEN} bytes`);
        this.stats.packetsForwardedIn++;
        return this.route(c, p.subarray(0, KEY_LEN), p.subarray(KEY_LEN, 2 * KEY_LEN), p.subarray(2 * KEY_LEN), true);
      }
      case FrameType.NotePreferred: {
        if (p.length !== 1) return err("ERR_DERP_BAD_FRAME", `NotePreferred of ${p.length} bytes`);
        const pref = p[0] !== 0;
        if (pref !== c.preferred) this.stats.homeClients += pref ? 1 : -1;
        c.preferred = pref;
        return;
      }
      case FrameType.WatchConns: {
        if (p.length !== 0) return err("ERR_DERP_BAD_FRAME", `WatchConns of ${p.length} bytes`);
        if (!c.canMesh) return err("ERR_DERP_FORBIDDEN", "WatchConns without the mesh key");
        if (c.watching) return;
        c.watching = true;
        this.watchers.add(c);
        this.stats.watchers = this.watchers.size;
        for (const set of this.clients.values()) {
          const a = set[set.length - 1]!;
          c.enqueueControl(this.presentFrame(a));
        }
        return;
      }
      case FrameType.ClosePeer: {
        if (p.length !== KEY_LEN) return err("ERR_DERP_BAD_FRAME", `ClosePeer of ${p.length} bytes`);
        if (!c.canMesh) return err("ERR_DERP_FORBIDDEN", "ClosePeer without the mesh key");
        for (const t of [...(this.clients.get(keyId(p)) ?? [])]) t.close("closed by mesh peer (ClosePeer)");
        return;
      }
      case FrameType.Ping: {
        if (p.length < PING_LEN || p.length > MAX_PING_LEN) return err("ERR_DERP_BAD_FRAME", `Ping of ${p.length} bytes`);
        if (!c.watching && c.pendingControl() >= 8) {
          this.stats.pingsIgnored++;
          return;
        }
        return c.enqueueControl(encodePong(p.slice(0, PING_LEN)));
      }
      case FrameType.Pong:
      case FrameType.KeepAlive:
        return;
      default:
        this.stats.unknownFrames++;
        return;
    }
  }

  /** @internal */
  activate(c: ServerConn): void {
    const id = keyId(c.clientKey!);
    let set = this.clients.get(id);
    if (!set && this.stats.currentClients >= this.maxClients) {
      this.stats.closedServerFull++;
      c.close("server full");
      return;
    }
    c.state = "active";
    this.stats.loginsOk++;
    if (!set) {
      set = [];
      this.clients.set(id, set);
      this.stats.currentClients++;
    }
    for (const old of set) old.enqueueControl(encodeHealth("this node key connected to this relay again; the newest connection is used"));
    set.push(c);
    c.enqueueControl(encodeServerInfo(c.clientKey!, this.privateKey, this.random));
    c.scheduleKeepAlive(this.now());
    const present = this.presentFrame(c);
    for (const w of this.watchers) if (w !== c) w.enqueueControl(present);
  }

  /** @internal */
  unregister(c: ServerConn): void {
    if (c.preferred) this.stats.homeClients--;
    if (this.watchers.delete(c)) this.stats.watchers = this.watchers.size;
    const key = c.clientKey!;
    const id = keyId(key);
    const set = this.clients.get(id);
    if (!set) return;
    const i = set.indexOf(c);
    if (i >= 0) set.splice(i, 1);
    if (set.length > 0) return;
    this.clients.delete(id);
    this.stats.currentClients--;
    const gone = encodePeerGone(key, PeerGoneReason.Disconnected);
    for (const w of this.watchers) w.enqueueControl(gone);
    if (!this.meshRoutes.has(id)) this.notifyGone(key, id);
  }

  private notifyGone(key: Uint8Array, id: string): void {
    const recipients = this.sentTo.get(id);
    this.sentTo.delete(id);
    if (!recipients) return;
    const f = encodePeerGone(key, PeerGoneReason.Disconnected);
    for (const r of recipients) {
      const set = this.clients.get(r);
      if (!set) continue;
      this.stats.peerGoneSent++;
      set[set.length - 1]!.enqueueControl(f);
    }
  }

  private presentFrame(c: ServerConn): Uint8Array {
    let flags = 0;
    if (c.info?.isProber) flags |= PeerPresentFlags.IsProber;
    if (c.canMesh) flags |= PeerPresentFlags.IsMeshPeer;
    if (flags === 0) flags = PeerPresentFlags.IsRegular;
    return encodePeerPresent(c.clientKey!, c.remote.ip16, c.remote.port, flags);
  }

  private route(from: ServerConn, src: Uint8Array, dst: Uint8Array, pkt: Uint8Array, forwarded: boolean): void {
    const did = keyId(dst);
    const set = this.clients.get(did);
    if (set) {
      // Remember who heard from src (for PeerGone), bounded: ≤ 4096 recipients per sender
      // and ≤ 2 × maxClients senders (forwarded senders from the mesh included).
      const sid = keyId(src);
      let rec = this.sentTo.get(sid);
      if (!rec && this.sentTo.size < 2 * this.maxClients) this.sentTo.set(sid, (rec = new Set()));
      if (rec && rec.size < 4096) rec.add(did);
      set[set.length - 1]!.enqueuePacket(encodeRecvPacket(src, pkt));
      return;
    }
    const fwd = forwarded ? undefined : this.meshRoutes.get(did);
    if (fwd) {
      this.stats.packetsForwardedOut++;
      fwd.forward(src, dst, pkt);
      return;
    }
    this.stats.dropUnknownDest++;
    from.peerGoneNotHere(Uint8Array.from(dst), this.now());
  }

  private login(c: ServerConn, f: Frame): void {
    if (f.type !== FrameType.ClientInfo) return c.fail(new DerpProtocolError("ERR_DERP_BAD_HANDSHAKE", `first frame type 0x${f.type.toString(16)}, want ClientInfo`));
    const r = parseClientInfo(f.payload, this.privateKey);
    if (!r.ok) return c.fail(r.error);
    const { clientKey, info } = r.value;
    const canMesh = this.meshKey !== null && info.meshKey !== undefined && keyEqual(info.meshKey, this.meshKey);
    c.setLoggedIn(clientKey, info, canMesh);
    if (info.meshKey !== undefined && !canMesh) return c.fail(new DerpProtocolError("ERR_DERP_FORBIDDEN", "ClientInfo carries a wrong mesh key"));
    if (this.admitHook && !canMesh) {
      c.state = "admitting";
      this.admitHook(c, { clientKey, info, remote: c.remote });
      return;
    }
    this.activate(c);
  }
}
