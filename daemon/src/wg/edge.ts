/**
 * The I/O edge of lattice-wg: wires the sans-IO WireGuard device to a {@link Tun}
 * (the TUN interface), a {@link Bind} (the network: a UDP socket in lattice-wg) and one
 * timer driven by the device's next deadline. It takes interfaces, not the concrete
 * TunDevice / UdpBind, so tests run it on in-memory fakes without root. Every input
 * batch (TUN read, datagrams, timer) is fed to the device, then its outputs are drained
 * in batches (one Bind.send per batch, write() per packet to the TUN). Endpoints are
 * @lattice/netaddr bytes and carry their sticky source both ways.
 *
 * Link state: the device is up exactly while the interface is (IFF_UP), as in
 * wireguard-go (device.go upLocked/downLocked): checked every second through the TUN fd
 * (wherever the link is: another namespace too), at once when a TUN write fails with
 * EIO, and before any input is dropped while the device is down. The UDP socket stays
 * bound while down (wireguard-go and the kernel close it); what arrives is dropped.
 *
 * Errors: only the loss of the interface (deleted) or of a socket's reader ends the
 * edge. A single packet the kernel refuses (TUN write EIO/EINVAL/ENOBUFS, UDP send
 * ENETUNREACH/EMSGSIZE/EPERM..., a failed TUN read) is dropped and counted; the first
 * of each errno is logged.
 */
import type { Bind, DeviceSnapshot, DeviceUpdate, Endpoint, OutgoingDatagram } from "@lattice/wireguard";
import type { PacketBatch, Tun, TunError } from "@lattice/tun";
import { QUEUE_STAGED_SIZE, UapiErrno, UapiError } from "@lattice/wireguard";
import type { Logger } from "./log.js";

/** The device operations the edge needs (implemented by @lattice/wireguard's Device). */
export interface EdgeDevice {
  /** Applies a validated UAPI set (all or nothing). */
  applyConfig(u: DeviceUpdate): void;
  /** State for UAPI get. */
  snapshot(): DeviceSnapshot;
  /** IP packets read from the TUN (the device may keep them staged: they must not be reused). */
  sendPackets(batch: readonly Uint8Array[]): void;
  /** A datagram read from UDP; decrypted in place, delivered packets are views into it until drained. */
  receiveDatagram(data: Uint8Array, from: Endpoint): void;
  /** Runs due timers. */
  tick(): void;
  /** When tick() should next run (same clock as the device's `now`), or null/undefined/Infinity for never. */
  nextDeadline(): number | null | undefined;
  /** Drains datagrams to send. */
  takeDatagrams(): OutgoingDatagram[];
  /** Drains decrypted packets for the TUN. */
  takePackets(): Uint8Array[];
  /** Inner MTU used for padding; the edge keeps it equal to the interface's MTU. */
  mtu?: number;
  /** Device counters (for logs), if the device keeps them. */
  stats?(): { drops: Record<string, number> };
  /** Brings the device up or down with the link (down: stop sending, keep the configuration). */
  setUp?(up: boolean): void;
}

/**
 * An optional packet hook between the TUN and the device (latticed's packet filter and
 * ICMP ping; lattice-wg has none). Each returns true to let the packet through; a
 * packet it refuses is dropped (the hook counts why).
 */
export interface EdgeFilter {
  /** A packet decrypted from a peer, before it is written to the TUN (a view: copy to keep). */
  inbound(packet: Uint8Array): boolean;
  /** A packet read from the TUN, before the device encrypts it. */
  outbound(packet: Uint8Array): boolean;
}

/** Dependencies of {@link WgEdge}. */
export interface EdgeDeps {
  readonly device: EdgeDevice;
  readonly tun: Tun;
  /**
   * A new, unopened Bind (lattice-wg: `new UdpBind()`). The edge opens one per listen
   * port; a rebind opens the new one before closing the old (a port in use changes nothing).
   */
  readonly createBind: () => Bind;
  /** The device's clock (ms). */
  readonly now: () => number;
  readonly log: Logger;
  /** Called once when the edge stops on its own (interface deleted, socket failure). */
  readonly onFatal: (err: Error) => void;
  /** Packet hook (absent: every packet passes, as in lattice-wg). */
  readonly filter?: EdgeFilter;
}

/** Edge counters. */
export interface EdgeStats {
  /** Datagrams the device produced but the bind did not send. */
  udpDropped: number;
  /** Decrypted packets the TUN did not take. */
  tunDropped: number;
  /** Inputs the device threw on (a device bug: dropped and logged, never fatal). */
  deviceErrors: number;
  /** TUN reads that failed (one packet lost each; reading goes on). */
  tunReadErrors: number;
  /** Times the device was taken down / brought up with the link. */
  linkDowns: number;
  linkUps: number;
  /** Packets the filter hook refused (inbound: from peers; outbound: from the TUN). */
  filteredIn: number;
  filteredOut: number;
}

/** The running edge. */
export class WgEdge {
  /** Counters. */
  readonly stats: EdgeStats = { udpDropped: 0, tunDropped: 0, deviceErrors: 0, tunReadErrors: 0, linkDowns: 0, linkUps: 0, filteredIn: 0, filteredOut: 0 };
  #bind: Bind | null = null;
  #fwmark = 0;
  #timer: NodeJS.Timeout | null = null;
  #linkTimer: NodeJS.Timeout | null = null;
  /** What the device was last told: the link is up. */
  #linkUp = true;
  /** "where errno" pairs already logged (each kind of I/O error is logged once). */
  readonly #logged = new Set<string>();
  #timerAt = Infinity;
  #closed = false;
  #dgData: Uint8Array[] = [];
  #dgTo: Endpoint[] = [];
  #tunViews: Uint8Array[] = [];

  constructor(private readonly d: EdgeDeps) {}

  /**
   * Binds UDP on `port` (0 = random), tells the device its port and the link state,
   * starts the TUN and UDP readers, the timer and the link watch (1 s).
   */
  start(port = 0): void {
    this.#rebind(port);
    this.d.device.applyConfig({ listenPort: this.port, replacePeers: false, peers: [] });
    // Follow `ip link set up/down` and `ip link set mtu` wherever the link is (wireguard-go
    // watches netlink, which cannot see a link moved to another namespace): polling.
    this.#linkTimer = setInterval(() => {
      this.#syncLink();
      this.#syncMtu();
      this.#flush();
    }, 1_000);
    this.#linkTimer.unref();
    this.#syncMtu();
    this.#syncLink();
    this.d.tun.start({
      onPackets: (b) => this.#onTun(b),
      onError: (e) => this.#fatal(e),
      onReadError: (e) => {
        this.stats.tunReadErrors++;
        this.#logOnce("TUN read", e.syscallCode ?? e.code, "packet lost");
      },
    });
    this.#flush();
  }

  /** The link state as the device sees it (true = up). */
  get linkUp(): boolean {
    return this.#linkUp;
  }

  /** The UDP port bound now (0 if none). */
  get port(): number {
    return this.#bind?.port ?? 0;
  }

  /** UAPI get: the device's snapshot, with the port actually bound. */
  snapshot(): DeviceSnapshot {
    const s = this.d.device.snapshot();
    return { ...s, listenPort: this.port || s.listenPort, fwmark: this.#fwmark || s.fwmark };
  }

  /**
   * UAPI set: opens a new Bind first when listen_port changes (EADDRINUSE → UapiError
   * PORT_IN_USE, nothing applied), applies SO_MARK, then the device config with the
   * port actually bound.
   */
  apply(u: DeviceUpdate): void {
    let update = u;
    if (u.listenPort !== undefined && u.listenPort !== this.port) {
      try {
        this.#rebind(u.listenPort);
      } catch (e) {
        throw new UapiError(UapiErrno.PORT_IN_USE, `listen_port=${u.listenPort}: ${(e as Error).message}`, undefined, "listen_port");
      }
      update = { ...u, listenPort: this.port };
    }
    if (u.fwmark !== undefined && u.fwmark !== this.#fwmark) {
      try {
        this.#bind?.setMark(u.fwmark);
        this.#fwmark = u.fwmark;
      } catch (e) {
        throw new UapiError(UapiErrno.PORT_IN_USE, `fwmark=${u.fwmark}: ${(e as Error).message}`, undefined, "fwmark");
      }
    }
    this.d.device.applyConfig(update);
    this.#flush();
  }

  #rebind(port: number): void {
    const next = this.d.createBind();
    next.open(port, {
      onReceive: (data, from, n) => this.#onReceive(data, from, n),
      onError: (e) => this.#fatal(e),
    });
    if (this.#fwmark !== 0) {
      try {
        next.setMark(this.#fwmark);
      } catch (e) {
        next.close();
        throw e;
      }
    }
    const old = this.#bind;
    this.#bind = next;
    old?.close();
    this.d.log.info(next.describe());
  }

  #deviceError(where: string, e: unknown): void {
    // Powers of two: the first errors in full, then ever more rarely.
    const n = ++this.stats.deviceErrors;
    if ((n & (n - 1)) === 0) this.d.log.error(`device ${where} threw (${n} so far): ${(e as Error).stack ?? String(e)}`);
  }

  /** Logs the first I/O error of each kind (`where` + errno), then only counts. */
  #logOnce(where: string, errno: string, what: string): void {
    const key = `${where} ${errno}`;
    if (this.#logged.has(key)) return;
    this.#logged.add(key);
    this.d.log.error(`${where} failed (${errno}): ${what}; further ${where} ${errno} errors are only counted`);
  }

  /**
   * Reads the link state through the TUN fd and brings the device up or down with it.
   * Unknown (old kernel) counts as up. Deletion is fatal (ERR_TUN_GONE).
   */
  #syncLink(): void {
    if (this.#closed) return;
    let up: boolean | undefined;
    try {
      up = this.d.tun.linkUp();
    } catch (e) {
      const err = e as TunError;
      if (err.code === "ERR_TUN_GONE") {
        this.#fatal(err);
        return;
      }
      this.#logOnce("link state", err.syscallCode ?? err.code ?? "error", "treating the link as up");
      up = undefined;
    }
    const now = up ?? true;
    if (now === this.#linkUp) return;
    this.#linkUp = now;
    if (now) this.stats.linkUps++;
    else this.stats.linkDowns++;
    this.d.log.info(
      now
        ? `Interface ${this.d.tun.name} is up: device up`
        : `Interface ${this.d.tun.name} is down: device down (sessions dropped, configuration kept)`,
    );
    try {
      this.d.device.setUp?.(now);
    } catch (e) {
      this.#deviceError("setUp", e);
    }
  }

  #syncMtu(): void {
    if (this.d.device.mtu === undefined) return;
    try {
      const mtu = this.d.tun.mtu;
      if (mtu !== this.d.device.mtu) {
        this.d.log.info(`MTU of ${this.d.tun.name} is now ${mtu}`);
        this.d.device.mtu = mtu;
      }
    } catch {
      /* renamed or moved away: keep the last value */
    }
  }

  #onTun(b: PacketBatch): void {
    // Packets only come from an up link: catch up before the device would drop them.
    if (!this.#linkUp) this.#syncLink();
    // One copy per batch (the read buffer is reused; staged packets must stay valid).
    const n = b.count;
    const end = b.offsets[n - 1]! + b.lengths[n - 1]!;
    const copy = new Uint8Array(b.buffer.subarray(0, end));
    const views = this.#tunViews;
    views.length = n;
    for (let i = 0; i < n; i++) {
      const off = b.offsets[i]!;
      views[i] = new Uint8Array(copy.buffer, copy.byteOffset + off, b.lengths[i]!);
    }
    const f = this.d.filter;
    if (f !== undefined) this.#keep(views, (p) => f.outbound(p), "out");
    if (views.length === 0) return;
    this.#sendToDevice(views);
  }

  /**
   * Packets for the peers that did not come from the TUN (latticed's ICMP ping): through
   * the device like TUN packets (not through the outbound filter), then flushed.
   */
  inject(packets: readonly Uint8Array[]): void {
    if (this.#closed || packets.length === 0) return;
    this.#sendToDevice([...packets]);
  }

  /**
   * Packets for the host that did not come from a peer (latticed's MagicDNS replies):
   * written to the TUN as they are (not through the inbound filter); refused ones counted
   * in `tunDropped`. Never throws.
   */
  deliver(packets: readonly Uint8Array[]): void {
    if (this.#closed || packets.length === 0) return;
    let written = 0;
    try {
      written = this.d.tun.write(packets);
    } catch {
      written = 0;
    }
    this.stats.tunDropped += packets.length - written;
  }

  /** Removes the packets `pass` refuses from `list` in place (a throwing hook refuses). */
  #keep(list: Uint8Array[], pass: (p: Uint8Array) => boolean, dir: "in" | "out"): void {
    let k = 0;
    for (let i = 0; i < list.length; i++) {
      let ok = false;
      try {
        ok = pass(list[i]!);
      } catch (e) {
        this.#deviceError(`filter ${dir}`, e);
      }
      if (ok) list[k++] = list[i]!;
      else if (dir === "in") this.stats.filteredIn++;
      else this.stats.filteredOut++;
    }
    list.length = k;
  }

  #sendToDevice(views: Uint8Array[]): void {
    const n = views.length;
    // Chunks no larger than the device's per-peer staging queue (it stages a whole call
    // before sealing, and a bigger call would overflow and drop).
    try {
      if (n <= QUEUE_STAGED_SIZE) this.d.device.sendPackets(views);
      else for (let i = 0; i < n; i += QUEUE_STAGED_SIZE) this.d.device.sendPackets(views.slice(i, i + QUEUE_STAGED_SIZE));
    } catch (e) {
      this.#deviceError("sendPackets", e);
    }
    views.length = 0;
    this.#flush();
  }

  #onReceive(data: readonly Uint8Array[], from: readonly Endpoint[], n: number): void {
    // While down the device drops everything: make sure the link has not come up meanwhile.
    if (!this.#linkUp) this.#syncLink();
    const dev = this.d.device;
    for (let i = 0; i < n; i++) {
      try {
        dev.receiveDatagram(data[i]!, from[i]!);
      } catch (e) {
        this.#deviceError("receiveDatagram", e);
      }
    }
    this.#flush();
  }

  #flush(): void {
    if (this.#closed) return;
    const dev = this.d.device;
    const dgs = dev.takeDatagrams();
    if (dgs.length > 0) {
      const data = this.#dgData;
      const to = this.#dgTo;
      data.length = 0;
      to.length = 0;
      for (const g of dgs) {
        data.push(g.data);
        to.push(g.to);
      }
      let sent = 0;
      try {
        if (this.#bind) {
          sent = this.#bind.send(data, to, data.length);
          const err = this.#bind.lastSendError;
          if (err !== undefined) this.#logOnce("UDP send", err, "datagram dropped");
        }
      } catch (e) {
        this.#logOnce("UDP send", (e as { code?: string }).code ?? "error", `${(e as Error).message}; datagrams dropped`);
      }
      this.stats.udpDropped += dgs.length - sent;
    }
    const pkts = dev.takePackets();
    const f = this.d.filter;
    if (f !== undefined && pkts.length > 0) this.#keep(pkts, (p) => f.inbound(p), "in");
    if (pkts.length > 0) {
      let written = 0;
      let err: string | undefined;
      try {
        written = this.d.tun.write(pkts);
        err = this.d.tun.lastWriteError;
      } catch (e) {
        err = (e as TunError).code ?? "error";
      }
      this.stats.tunDropped += pkts.length - written;
      if (err !== undefined) {
        this.#logOnce("TUN write", err, "packet dropped");
        // EIO: the link is down; follow it now rather than at the next poll.
        if (err === "EIO") this.#syncLink();
        if (this.#closed) return;
      }
    }
    this.#schedule();
  }

  #schedule(): void {
    const next = this.d.device.nextDeadline();
    const at = next === null || next === undefined ? Infinity : next;
    if (at === this.#timerAt && this.#timer !== null) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = at;
    if (at === Infinity) return;
    const delay = Math.max(0, Math.ceil(at - this.d.now()));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      if (this.#closed) return;
      try {
        this.d.device.tick();
      } catch (e) {
        this.#deviceError("tick", e);
      }
      this.#flush();
    }, delay);
  }

  #fatal(e: Error | TunError): void {
    if (this.#closed) return;
    this.close();
    this.d.onFatal(e);
  }

  /** A one-line summary of the I/O counters (for logs). */
  describeStats(): string {
    const t = this.d.tun.stats;
    const per = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(1) : "0");
    return (
      `tun rx ${t.rxPackets} pkts in ${t.rxBatches} batches (${per(t.rxPackets, t.rxBatches)}/batch), tx ${t.txPackets} dropped ${t.txDropped}; ` +
      (this.#bind ? this.#bind.describeStats() : "udp closed")
    );
  }

  /** Stops timers and readers, closes UDP and the TUN. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.d.log.info(`I/O: ${this.describeStats()}`);
    const drops = this.d.device.stats?.().drops;
    if (drops) {
      const nz = Object.entries(drops).filter(([, v]) => v > 0);
      if (nz.length > 0) this.d.log.info(`device drops: ${nz.map(([k, v]) => `${k}=${v}`).join(" ")}`);
    }
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#linkTimer) clearInterval(this.#linkTimer);
    this.#bind?.close();
    this.d.tun.close();
  }
}
