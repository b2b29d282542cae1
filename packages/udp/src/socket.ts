/**
 * A batched UDP socket: dual-stack bind, recvmmsg reads with one JS callback per batch,
 * sendmmsg (and UDP GSO) writes, sticky sources (IP_PKTINFO / IPV6_PKTINFO), SO_MARK.
 * Addresses cross the JS/C boundary as @lattice/netaddr endpoint records (44 bytes, the
 * layout documented in netaddr/src/endpoint.ts): no text on the data path.
 *
 * The system calls live in the one native addon built from packages/tun (native/udp.c,
 * loaded with @lattice/tun's `loadNative`): splitting the .node in two would duplicate
 * the uv_poll reader machinery they share for no gain. This package owns the socket's
 * TypeScript side and its errors ({@link UdpError}: a UDP failure is not a TunError).
 */
import { ENDPOINT_BYTES, ENDPOINT_LOCAL_OFFSET, Endpoint } from "@lattice/netaddr";
import { errnoName, loadNative, type NativeAddon, type PacketBatch, type ReaderHandle } from "@lattice/tun";
import { UdpError, wrapNative } from "./errors.js";

/** Address record size in {@link DatagramBatch.addrs} (= netaddr's ENDPOINT_BYTES). */
export const ADDR_RECORD_BYTES = ENDPOINT_BYTES;
const LOCAL = ENDPOINT_LOCAL_OFFSET;
/** Flag (record byte LOCAL+1) set by the addon when the kernel refused the record's source. */
const SRC_REFUSED = 1;

/**
 * A batch of received datagrams; `addrs` holds one {@link ADDR_RECORD_BYTES}-byte
 * endpoint record per datagram (the remote address and port, and the local address and
 * interface it arrived at): see {@link endpointAt}.
 */
export interface DatagramBatch extends PacketBatch {
  readonly addrs: Uint8Array;
}

/** The endpoint datagram `i` of a batch came from (a new object, with its sticky source). */
export function endpointAt(batch: DatagramBatch, i: number): Endpoint {
  const e = Endpoint.fromRecord(batch.addrs, i * ADDR_RECORD_BYTES);
  if (e === null) throw new UdpError("ERR_UDP_READ", `datagram ${i}: the addon wrote no address`);
  return e;
}

/** Options of {@link BatchUdpSocket.bind}. */
export interface UdpBindOptions {
  /** Port to bind (0 = random). */
  readonly port: number;
  /** Bind an AF_INET6 dual-stack socket (default true; falls back to IPv4 if unavailable). */
  readonly ipv6?: boolean;
  /** Datagrams per recvmmsg (default 64). */
  readonly maxBatch?: number;
  /**
   * Send runs of same-size datagrams to one address as one UDP GSO (UDP_SEGMENT)
   * message (default true; falls back per message if the kernel refuses).
   */
  readonly gso?: boolean;
  /** Injected addon (tests). */
  readonly native?: NativeAddon;
}

/** Handlers of {@link BatchUdpSocket.start}. */
export interface UdpHandlers {
  /** One call per received batch (GRO super-datagrams arrive already split). */
  onDatagrams(batch: DatagramBatch): void;
  /** Reading failed for good (the socket is broken). Single failed receives are not reported. */
  onError(err: UdpError): void;
}

/** Counters of a UDP socket. */
export interface UdpStats {
  /** Datagrams received. */
  rxDatagrams: number;
  /** Receive batches. */
  rxBatches: number;
  /** Datagrams sent. */
  txDatagrams: number;
  /** Datagrams dropped on send (buffer full, unreachable). */
  txDropped: number;
  /** Datagrams whose sticky source the kernel refused (sent from its own choice instead). */
  srcCleared: number;
}

const SLOT = 65_536;

/** A bound UDP socket with batched I/O. Create with {@link BatchUdpSocket.bind}. */
export class BatchUdpSocket {
  /** Counters. */
  readonly stats: UdpStats = { rxDatagrams: 0, rxBatches: 0, txDatagrams: 0, txDropped: 0, srcCleared: 0 };
  #reader: ReaderHandle | null = null;
  #closed = false;
  #sendAddrs = new Uint8Array(64 * ADDR_RECORD_BYTES);
  readonly #err = new Int32Array(1);
  /**
   * errno name of the first datagram the kernel refused in the most recent `send()` call
   * (ENETUNREACH, EMSGSIZE, ENOBUFS, EPERM, ...), undefined if it refused none. Refused
   * datagrams are dropped and counted in `stats.txDropped`; `send()` never throws for them.
   */
  lastSendError: string | undefined = undefined;

  private constructor(
    private readonly native: NativeAddon,
    /** The socket's fd. */
    readonly fd: number,
    /** The bound port. */
    readonly port: number,
    /** 6 = dual-stack AF_INET6 socket, 4 = IPv4 only. */
    readonly family: 4 | 6,
    private readonly maxBatch: number,
    /** Whether sends use UDP GSO. */
    readonly gso: boolean,
    /** Whether the kernel may hand us UDP GRO super-datagrams (split natively). */
    readonly gro: boolean,
  ) {}

  /** Binds a socket on `port` (0 = random), dual-stack when possible. */
  static bind(opts: UdpBindOptions): BatchUdpSocket {
    let native: NativeAddon;
    try {
      native = opts.native ?? loadNative();
    } catch (e) {
      throw new UdpError("ERR_UDP_ADDON_MISSING", (e as Error).message, undefined, e);
    }
    let r: { fd: number; port: number; family: 4 | 6; gro: boolean };
    try {
      r = native.udpOpen(opts.port, opts.ipv6 ?? true);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if ((opts.ipv6 ?? true) && (code === "EAFNOSUPPORT" || code === "EADDRNOTAVAIL")) {
        return BatchUdpSocket.bind({ ...opts, ipv6: false });
      }
      throw wrapNative("ERR_UDP_BIND", `binding UDP port ${opts.port}`, e);
    }
    return new BatchUdpSocket(native, r.fd, r.port, r.family, opts.maxBatch ?? 64, opts.gso ?? true, r.gro);
  }

  /** Sets SO_MARK (fwmark) on the socket; 0 clears it. */
  setMark(mark: number): void {
    this.native.udpSetMark(this.fd, mark);
  }

  /** Starts reading: one `onDatagrams` call per recvmmsg batch. */
  start(h: UdpHandlers): void {
    if (this.#closed) throw new UdpError("ERR_CLOSED", "UDP socket is closed");
    if (this.#reader) throw new UdpError("ERR_UDP_READ", "UDP reader already started");
    const buffer = Buffer.allocUnsafeSlow(this.maxBatch * SLOT);
    // With GRO one message may carry up to 64 datagrams.
    const maxOut = this.maxBatch * (this.gro ? 64 : 1);
    const offsets = new Uint32Array(maxOut);
    const lengths = new Uint32Array(maxOut);
    const addrs = new Uint8Array(maxOut * ADDR_RECORD_BYTES);
    const batch = { buffer, offsets, lengths, addrs, count: 0 };
    this.#reader = this.native.readerStart(1, this.fd, buffer, offsets, lengths, addrs, this.maxBatch, SLOT, (count, errno, fatal) => {
      if (errno !== 0) {
        if (!fatal) return;
        this.#stopReader();
        const name = errnoName(errno);
        h.onError(new UdpError("ERR_UDP_READ", `reading UDP socket failed (${name})`, name));
        return;
      }
      batch.count = count;
      this.stats.rxDatagrams += count;
      this.stats.rxBatches++;
      h.onDatagrams(batch);
    });
  }

  #stopReader(): void {
    if (this.#reader) {
      this.native.readerStop(this.#reader);
      this.#reader = null;
    }
  }

  /**
   * Sends datagrams[i] to to[i] with sendmmsg (64 per syscall), from to[i]'s sticky
   * source when it has one. Returns how many were sent; the rest were dropped (socket
   * buffer full after a short wait, or unreachable). A source the kernel refuses
   * (address removed) is cleared on that endpoint object (`clearSrc`, wireguard-go's
   * ClearSrc): the datagram goes out from the kernel's choice, and so do later sends to
   * the same object; the peer's next datagram brings a new endpoint and source.
   */
  send(datagrams: readonly Uint8Array[], to: readonly Endpoint[], count = datagrams.length): number {
    if (this.#closed) throw new UdpError("ERR_CLOSED", "UDP socket is closed");
    if (count === 0) return 0;
    if (this.#sendAddrs.length < count * ADDR_RECORD_BYTES) this.#sendAddrs = new Uint8Array(count * ADDR_RECORD_BYTES * 2);
    const rec = this.#sendAddrs;
    let anySrc = false;
    for (let i = 0; i < count; i++) {
      const b = to[i]!.bytes;
      if (b[LOCAL] !== 0) anySrc = true;
      rec.set(b, i * ADDR_RECORD_BYTES);
    }
    const err = this.#err;
    const n = this.native.udpSend(this.fd, this.family === 6, datagrams, rec, count, this.gso, err);
    this.lastSendError = err[0] === 0 ? undefined : errnoName(err[0]!);
    if (anySrc) {
      for (let i = 0; i < count; i++) {
        if ((rec[i * ADDR_RECORD_BYTES + LOCAL + 1]! & SRC_REFUSED) === 0) continue;
        to[i]!.clearSrc();
        this.stats.srcCleared++;
      }
    }
    this.stats.txDatagrams += n;
    this.stats.txDropped += count - n;
    return n;
  }

  /** Stops reading and closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopReader();
    this.native.closeFd(this.fd);
  }
}
