/** A Linux TUN interface (IFF_TUN | IFF_NO_PI) read in batches by the native addon. */
import { errnoName, type PacketBatch } from "./batch.js";
import { TunError, wrapNative } from "./errors.js";
import { loadNative, type NativeAddon, type ReaderHandle } from "./native.js";

/** Options of {@link TunDevice.open}. */
export interface TunOpenOptions {
  /** Interface name (1–15 bytes); a `%d` pattern such as "tun%d" lets the kernel choose. */
  readonly name: string;
  /** MTU to set; omitted = leave the kernel's default. */
  readonly mtu?: number;
  /** Packets per read batch (default 64). */
  readonly maxBatch?: number;
  /**
   * Open with IFF_VNET_HDR (default: try it, fall back to plain I/O if the kernel refuses;
   * true = required, false = off): writes then coalesce in-order TCP segments of
   * a batch into GSO super-packets (one kernel TCP receive per up to 64 KB).
   */
  readonly vnetHdr?: boolean;
  /**
   * With vnetHdr, let the kernel hand over 64 KB TCP segments (TSO) and partial
   * checksums (default true); the native reader splits them into MTU-sized packets.
   */
  readonly offload?: boolean;
  /** Open with IFF_MULTI_QUEUE (default false). */
  readonly multiQueue?: boolean;
  /** Injected addon (tests); default: the built addon. */
  readonly native?: NativeAddon;
}

/** Handlers for {@link TunDevice.start}. */
export interface TunHandlers {
  /** One call per batch of packets read from the interface. */
  onPackets(batch: PacketBatch): void;
  /** Reading stopped for good: `ERR_TUN_GONE` when the interface was deleted. */
  onError(err: TunError): void;
  /**
   * One read failed (that packet is lost, counted in `stats.rxErrors`) and reading goes on:
   * `ERR_TUN_READ` with the errno name in `syscallCode`.
   */
  onReadError?(err: TunError): void;
}

/** Counters of a TUN device. */
export interface TunStats {
  /** Packets read. */
  rxPackets: number;
  /** Read batches (rxPackets / rxBatches = average batch size). */
  rxBatches: number;
  /** Packets written. */
  txPackets: number;
  /** Packets dropped on write (queue full or rejected by the kernel). */
  txDropped: number;
  /** Reads that failed without stopping the reader (each one lost packet). */
  rxErrors: number;
}

const SLOT = 65_536;
const AVG = 2_048;
/** Room to keep free before a vnet read: a 64 KB TSO packet split, with copied headers. */
const VNET_SLOT = 65_536 + 8_192;

/**
 * What the WireGuard edge needs of a TUN interface (implemented by {@link TunDevice};
 * in-memory fakes implement it in tests, so the edge runs without root).
 */
export interface Tun {
  /** Interface name (for logs). */
  readonly name: string;
  /** Current MTU (throws if the interface is gone). */
  readonly mtu: number;
  /** Counters. */
  readonly stats: TunStats;
  /** errno name of the first packet refused by the last write(), undefined if none. */
  readonly lastWriteError: string | undefined;
  /** Starts delivering read batches. */
  start(h: TunHandlers): void;
  /** Writes packets; returns how many the kernel took (never throws for an errno). */
  write(packets: readonly Uint8Array[], count?: number): number;
  /** IFF_UP (undefined: cannot tell); throws TunError ERR_TUN_GONE once deleted. */
  linkUp(): boolean | undefined;
  /** Stops reading and closes. Idempotent. */
  close(): void;
}

/** An open TUN interface. Create with {@link TunDevice.open}. */
export class TunDevice implements Tun {
  /** Counters. */
  readonly stats: TunStats = { rxPackets: 0, rxBatches: 0, txPackets: 0, txDropped: 0, rxErrors: 0 };
  /**
   * errno name of the first packet the kernel refused in the most recent `write()` call
   * (EIO while the link is down, EINVAL, ENOBUFS, EBADFD once the interface is gone, ...),
   * undefined if it refused none. Refused packets are dropped and counted in `stats.txDropped`.
   */
  lastWriteError: string | undefined = undefined;
  readonly #err = new Int32Array(1);
  #reader: ReaderHandle | null = null;
  #closed = false;
  readonly #maxBatch: number;

  private constructor(
    private readonly native: NativeAddon,
    /** The kernel's file descriptor (non-blocking). */
    readonly fd: number,
    /** The interface's actual name. */
    readonly name: string,
    /** The interface index at creation. */
    readonly ifindex: number,
    maxBatch: number,
    /** Whether the fd carries virtio-net headers (IFF_VNET_HDR). */
    readonly vnetHdr: boolean,
  ) {
    this.#maxBatch = maxBatch;
  }

  /** Creates (or attaches to) TUN interface `name`; needs CAP_NET_ADMIN. */
  static open(opts: TunOpenOptions): TunDevice {
    const native = opts.native ?? loadNative();
    let r: { fd: number; name: string };
    let vnet = opts.vnetHdr ?? true;
    try {
      r = native.tunOpen(opts.name, opts.multiQueue ?? false, vnet, vnet && (opts.offload ?? true));
    } catch (e) {
      // A kernel without virtio-net header/offload support on TUN: fall back to plain I/O.
      const sys = (e as { code?: string }).code;
      if (!vnet || opts.vnetHdr === true || (sys !== "EINVAL" && sys !== "EOPNOTSUPP")) {
        throw wrapNative("ERR_TUN_OPEN", `creating TUN interface "${opts.name}"`, e);
      }
      vnet = false;
      try {
        r = native.tunOpen(opts.name, opts.multiQueue ?? false, false, false);
      } catch (e2) {
        throw wrapNative("ERR_TUN_OPEN", `creating TUN interface "${opts.name}"`, e2);
      }
    }
    try {
      if (opts.mtu !== undefined) native.linkSetMtu(r.name, opts.mtu);
      const ifindex = native.linkIndex(r.name);
      return new TunDevice(native, r.fd, r.name, ifindex, opts.maxBatch ?? 64, vnet);
    } catch (e) {
      native.closeFd(r.fd);
      throw wrapNative("ERR_TUN_OPEN", `configuring TUN interface "${r.name}"`, e);
    }
  }

  /** The interface's current MTU. */
  get mtu(): number {
    return this.native.linkGetMtu(this.name);
  }

  /** Sets the interface's MTU. */
  setMtu(mtu: number): void {
    this.native.linkSetMtu(this.name, mtu);
  }

  /** Starts reading: one `onPackets` call per batch (up to maxBatch packets). */
  start(h: TunHandlers): void {
    if (this.#closed) throw new TunError("ERR_CLOSED", "TUN device is closed");
    if (this.#reader) throw new TunError("ERR_TUN_READ", "TUN reader already started");
    // vnet reads may be 64 KB TSO packets split into up to ~64 packets each.
    const maxOut = this.vnetHdr ? Math.max(1024, this.#maxBatch) : this.#maxBatch;
    const slot = this.vnetHdr ? VNET_SLOT : SLOT;
    const buffer = Buffer.allocUnsafeSlow(this.vnetHdr ? maxOut * AVG : this.#maxBatch * AVG + SLOT);
    const offsets = new Uint32Array(maxOut);
    const lengths = new Uint32Array(maxOut);
    const batch = { buffer, offsets, lengths, count: 0 };
    this.#reader = this.native.readerStart(this.vnetHdr ? 2 : 0, this.fd, buffer, offsets, lengths, null, this.#maxBatch, slot, (count, errno, fatal) => {
      if (errno !== 0) {
        if (!fatal) {
          this.stats.rxErrors++;
          const name = errnoName(errno);
          h.onReadError?.(new TunError("ERR_TUN_READ", `reading TUN interface "${this.name}" failed (${name}): packet lost`, name));
          return;
        }
        this.#stopReader();
        h.onError(this.#readError(errno));
        return;
      }
      batch.count = count;
      this.stats.rxPackets += count;
      this.stats.rxBatches++;
      h.onPackets(batch);
    });
  }

  #readError(errno: number): TunError {
    const name = errnoName(errno);
    let gone = name === "EBADFD" || name === "EIO";
    if (!gone) {
      try {
        this.native.linkIndex(this.name);
      } catch {
        gone = true;
      }
    }
    return gone
      ? new TunError("ERR_TUN_GONE", `TUN interface "${this.name}" was deleted (${name})`, name)
      : new TunError("ERR_TUN_READ", `reading TUN interface "${this.name}" failed (${name})`, name);
  }

  #stopReader(): void {
    if (this.#reader) {
      this.native.readerStop(this.#reader);
      this.#reader = null;
    }
  }

  /**
   * Writes packets (one write() each; with vnetHdr, in-order TCP segments of one flow
   * are merged into one GSO write) and returns how many the kernel took. A packet the
   * kernel refuses is dropped and the rest still go out: no errno throws (see
   * `lastWriteError`); a deleted interface is reported by the reader. Throws TunError
   * ERR_CLOSED after close().
   */
  write(packets: readonly Uint8Array[], count = packets.length): number {
    if (this.#closed) throw new TunError("ERR_CLOSED", "TUN device is closed");
    this.lastWriteError = undefined;
    if (count === 0) return 0;
    let n: number;
    const err = this.#err;
    try {
      n = this.native.writePackets(this.fd, packets, count, this.vnetHdr, err);
    } catch (e) {
      throw wrapNative("ERR_TUN_WRITE", `writing to TUN interface "${this.name}"`, e);
    }
    if (err[0] !== 0) this.lastWriteError = errnoName(err[0]!);
    this.stats.txPackets += n;
    this.stats.txDropped += count - n;
    return n;
  }

  /**
   * Whether the interface is administratively up (IFF_UP), wherever it is now: the fd
   * names it even after `ip link set IF netns OTHER` or a rename. Undefined when the
   * kernel cannot tell (before Linux 5.3, or without CAP_SYS_ADMIN to enter the
   * interface's namespace). Throws TunError ERR_TUN_GONE once the interface was deleted,
   * ERR_CLOSED after close().
   */
  linkUp(): boolean | undefined {
    if (this.#closed) throw new TunError("ERR_CLOSED", "TUN device is closed");
    let r: number;
    try {
      r = this.native.tunLinkUp(this.fd);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === "EBADFD" || code === "EBADF") throw new TunError("ERR_TUN_GONE", `TUN interface "${this.name}" was deleted (${String(code)})`, String(code), e);
      throw wrapNative("ERR_TUN_READ", `reading the link state of TUN interface "${this.name}"`, e);
    }
    return r < 0 ? undefined : r === 1;
  }

  /** Stops reading and closes the fd (the kernel deletes a non-persistent interface). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopReader();
    this.native.closeFd(this.fd);
  }
}
