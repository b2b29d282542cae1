/**
 * {@link openUdp}: a UDP socket owned by the native addon, for the WireGuard data path.
 * Receives with recvmmsg (+ UDP GRO) and one `onBatch` call per batch; sends with
 * sendmmsg (+ UDP GSO). Network conditions never throw: they are counted in
 * {@link UdpSocket.stats} (and receive errors reported through `onError`).
 */
import { UdpBatch, type UdpEndpoint } from "./batch.js";
import { UdpError, wrapNative } from "./errors.js";
import { loadNative, type NativeAddon, type NativeHandle } from "./native.js";

/** Options of {@link openUdp}. */
export interface UdpOpenOptions {
  /** Port to bind; 0 picks a free one (read it back from {@link UdpSocket.port}). */
  readonly port: number;
  /**
   * Address to bind (default "::": one AF_INET6 socket with IPV6_V6ONLY=0 serving IPv4
   * and IPv6). An IPv4 address makes an IPv4-only socket; any other IPv6 address an AF_INET6
   * socket bound to it.
   */
  readonly host?: string;
  /** SO_MARK for outgoing packets (needs CAP_NET_ADMIN; policy routing around the tunnel). */
  readonly fwmark?: number;
  /** Receive buffer bytes (default 7 MiB; SO_RCVBUFFORCE as root, else capped by rmem_max). */
  readonly rcvbuf?: number;
  /** Send buffer bytes (default 7 MiB; SO_SNDBUFFORCE as root, else capped by wmem_max). */
  readonly sndbuf?: number;
  /** Use UDP GSO (UDP_SEGMENT) for runs of equal-size datagrams to one destination (default true). */
  readonly gso?: boolean;
  /** Enable UDP GRO on receive; coalesced receives are split before `onBatch` (default true). */
  readonly gro?: boolean;
  /** recvmmsg slots, i.e. messages per batch (default 64, 1..1024). */
  readonly batchSize?: number;
  /** recvmmsg calls per readable event before yielding to the event loop (default 16). */
  readonly maxBatchesPerEvent?: number;
  /**
   * On EAGAIN/ENOBUFS while sending, wait for the socket to become writable at most once per
   * send call for this many ms, blocking the event loop (default 0: drop at once).
   */
  readonly sendWaitMs?: number;
  /** Called once per received batch; see {@link UdpBatch} for the buffer lifetime. */
  readonly onBatch: (batch: UdpBatch) => void;
  /** Called for receive errors (code ERR_UDP_RECV); the socket keeps running. */
  readonly onError: (err: UdpError) => void;
  /** The addon to use (tests inject one); default: the built one. */
  readonly native?: NativeAddon;
}

/** A datagram to send. */
export interface UdpDatagram extends UdpEndpoint {
  /** Payload (0..65507 bytes for IPv4, 0..65527 for IPv6). */
  readonly data: Uint8Array;
}

/** Counters of a {@link UdpSocket}. */
export interface UdpStats {
  /** recvmmsg + sendmmsg/sendmsg calls. */
  syscalls: number;
  /** Datagrams received + sent. */
  datagrams: number;
  /** Datagrams lost at this socket: rxDrops + txDrops + txErrors. */
  drops: number;
  /** recvmmsg calls (including the final one returning EAGAIN). */
  rxSyscalls: number;
  /** Datagrams delivered to onBatch. */
  rxDatagrams: number;
  /** Payload bytes delivered. */
  rxBytes: number;
  /** onBatch calls. */
  rxBatches: number;
  /** GRO-coalesced receives that were split. */
  rxGroMessages: number;
  /** Receive errors (reported through onError). */
  rxErrors: number;
  /**
   * Datagrams the kernel dropped on this socket, mostly because the receive buffer was
   * full (SO_MEMINFO's drop count; sampled when stats() is called and at close).
   */
  rxDrops: number;
  /** sendmmsg/sendmsg calls. */
  txSyscalls: number;
  /** Datagrams the kernel accepted. */
  txDatagrams: number;
  /** Payload bytes the kernel accepted. */
  txBytes: number;
  /** Messages sent with UDP_SEGMENT (each carrying 2..64 datagrams). */
  txGsoMessages: number;
  /** Datagrams dropped because the socket buffer/queue was full (EAGAIN, ENOBUFS). */
  txDrops: number;
  /** Datagrams the kernel refused (EMSGSIZE, ENETUNREACH, EACCES, wrong family...). */
  txErrors: number;
  /** errno name of the last send failure, if any. */
  txLastError: string | undefined;
  /** Whether GSO is in use (it turns off if the kernel refuses it with EIO). */
  gso: boolean;
  /** Whether GRO is enabled. */
  gro: boolean;
}

const DEFAULT_BUF = 7 << 20;
const ADDR_CACHE_MAX = 1024;

function intOption(v: unknown, field: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new UdpError("ERR_UDP_BAD_OPTION", `openUdp: ${field} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

function boolOption(v: unknown, field: string): boolean {
  if (v === undefined) return true;
  if (typeof v !== "boolean") throw new UdpError("ERR_UDP_BAD_OPTION", `openUdp: ${field} must be a boolean`);
  return v;
}

/**
 * Opens, configures and binds a socket and starts receiving at once.
 * Throws UdpError ERR_UDP_BAD_OPTION, ERR_UDP_OPEN (e.g. syscallCode EADDRINUSE, EPERM for
 * fwmark without CAP_NET_ADMIN) or ERR_UDP_ADDON_MISSING.
 */
export function openUdp(options: UdpOpenOptions): UdpSocket {
  const port = intOption(options.port, "port", 0, 65535, 0);
  const host = options.host ?? "::";
  if (typeof host !== "string") throw new UdpError("ERR_UDP_BAD_OPTION", "openUdp: host must be a string");
  const fwmark = options.fwmark === undefined ? undefined : intOption(options.fwmark, "fwmark", 0, 0xffffffff, 0);
  const rcvbuf = intOption(options.rcvbuf, "rcvbuf", 1, 0x3fffffff, DEFAULT_BUF);
  const sndbuf = intOption(options.sndbuf, "sndbuf", 1, 0x3fffffff, DEFAULT_BUF);
  const slots = intOption(options.batchSize, "batchSize", 1, 1024, 64);
  const loops = intOption(options.maxBatchesPerEvent, "maxBatchesPerEvent", 1, 1 << 20, 16);
  const waitMs = intOption(options.sendWaitMs, "sendWaitMs", 0, 1000, 0);
  const gso = boolOption(options.gso, "gso");
  const gro = boolOption(options.gro, "gro");
  if (typeof options.onBatch !== "function") throw new UdpError("ERR_UDP_BAD_OPTION", "openUdp: onBatch must be a function");
  if (typeof options.onError !== "function") throw new UdpError("ERR_UDP_BAD_OPTION", "openUdp: onError must be a function");
  const native = options.native ?? loadNative();
  const { onBatch, onError } = options;
  try {
    const r = native.open(
      host,
      port,
      fwmark !== undefined,
      fwmark ?? 0,
      rcvbuf,
      sndbuf,
      gso,
      gro,
      slots,
      loops,
      (data, meta, addresses, count) => onBatch(new UdpBatch(data, meta, addresses, count)),
      (_errno, name) => onError(new UdpError("ERR_UDP_RECV", `recvmmsg failed: ${name}`, name)),
    );
    return new UdpSocket(native, r.handle, r.port, r.family, { gso: r.gso, gro: r.gro, rcvbuf: r.rcvbuf, sndbuf: r.sndbuf }, waitMs);
  } catch (e) {
    throw wrapNative("ERR_UDP_OPEN", `openUdp(host ${host}, port ${port})`, e);
  }
}

/** What the kernel granted at open. */
export interface UdpSocketInfo {
  /** UDP GSO usable (probed at open). */
  readonly gso: boolean;
  /** UDP GRO enabled. */
  readonly gro: boolean;
  /** SO_RCVBUF as the kernel reports it (twice the requested size, kernel bookkeeping included). */
  readonly rcvbuf: number;
  /** SO_SNDBUF as the kernel reports it. */
  readonly sndbuf: number;
}

/** A bound UDP socket; create with {@link openUdp}. */
export class UdpSocket {
  /** The bound port. */
  readonly port: number;
  /** 6 for the (dual-stack) AF_INET6 socket, 4 for an IPv4-only one. */
  readonly family: 4 | 6;
  /** Capabilities granted at open. */
  readonly info: UdpSocketInfo;
  readonly #native: NativeAddon;
  readonly #handle: NativeHandle;
  readonly #waitMs: number;
  readonly #cache4 = new Map<string, Uint32Array>();
  readonly #cache6 = new Map<string, Uint32Array>();
  #dsts = new Uint32Array(64 * 5);
  #closed = false;

  /** @internal Use {@link openUdp}. */
  constructor(native: NativeAddon, handle: NativeHandle, port: number, family: 4 | 6, info: UdpSocketInfo, waitMs: number) {
    this.#native = native;
    this.#handle = handle;
    this.port = port;
    this.family = family;
    this.info = info;
    this.#waitMs = waitMs;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends datagrams, each to its own destination: sendmmsg per up to 64 messages, and
   * consecutive same-destination datagrams of equal size (the last may be shorter) as one
   * UDP GSO message. Returns how many the kernel accepted; the rest were dropped and
   * counted (see {@link UdpStats.txDrops}, {@link UdpStats.txErrors}). Returns 0 after
   * close. Throws UdpError ERR_UDP_BAD_DATAGRAM (before sending anything) for a datagram
   * whose data is not a Uint8Array, whose address is not of its family, or whose port is
   * not 1..65535.
   */
  sendBatch(datagrams: readonly UdpDatagram[]): number {
    const n = datagrams.length;
    if (this.#closed || n === 0) return 0;
    if (this.#dsts.length < n * 5) this.#dsts = new Uint32Array(n * 5);
    const dsts = this.#dsts;
    const datas = new Array<Uint8Array>(n);
    for (let i = 0; i < n; i++) {
      const d = datagrams[i];
      const a = this.#resolve(d, i);
      const o = i * 5;
      dsts[o] = a[0];
      dsts[o + 1] = a[1];
      dsts[o + 2] = a[2];
      dsts[o + 3] = a[3];
      dsts[o + 4] = d.port;
      datas[i] = d.data;
    }
    return this.#native.send(this.#handle, datas, dsts, 5, n, this.#waitMs);
  }

  /**
   * Sends all `datas` to one destination (the common WireGuard case: a batch for one
   * peer), with the same batching, GSO and error rules as {@link sendBatch}.
   */
  sendTo(datas: readonly Uint8Array[], to: UdpEndpoint): number {
    const n = datas.length;
    if (this.#closed || n === 0) return 0;
    for (let i = 0; i < n; i++) {
      if (!(datas[i] instanceof Uint8Array)) throw new UdpError("ERR_UDP_BAD_DATAGRAM", `sendTo: datas[${i}] must be a Uint8Array`);
    }
    const a = this.#resolve({ data: datas[0], address: to.address, port: to.port, family: to.family }, -1);
    const dst = this.#dsts;
    dst.set(a, 0);
    dst[4] = to.port;
    return this.#native.send(this.#handle, datas, dst, 0, n, this.#waitMs);
  }

  /** Counters since open (still readable after close). */
  stats(): UdpStats {
    const s = this.#native.stats(this.#handle);
    return {
      ...s,
      syscalls: s.rxSyscalls + s.txSyscalls,
      datagrams: s.rxDatagrams + s.txDatagrams,
      drops: s.rxDrops + s.txDrops + s.txErrors,
    };
  }

  /** Lets the process exit while the socket is open (like dgram's unref). */
  unref(): this {
    if (!this.#closed) this.#native.setRef(this.#handle, false);
    return this;
  }

  /** Undoes {@link unref}. */
  ref(): this {
    if (!this.#closed) this.#native.setRef(this.#handle, true);
    return this;
  }

  /**
   * Stops receiving and closes the socket. Idempotent; safe inside onBatch (no further
   * onBatch call happens, even for the rest of the current readable event).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close(this.#handle);
  }

  /** The destination's address as 4 u32 words of its IPv6 form (cached per socket). */
  #resolve(d: UdpDatagram, i: number): Uint32Array {
    const where = i < 0 ? "sendTo" : `sendBatch: datagrams[${i}]`;
    if (!(d.data instanceof Uint8Array)) throw new UdpError("ERR_UDP_BAD_DATAGRAM", `${where}.data must be a Uint8Array`);
    const port = d.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UdpError("ERR_UDP_BAD_DATAGRAM", `${where}.port must be an integer in 1..65535, got ${String(port)}`);
    }
    const cache = d.family === 4 ? this.#cache4 : d.family === 6 ? this.#cache6 : undefined;
    if (cache === undefined) throw new UdpError("ERR_UDP_BAD_DATAGRAM", `${where}.family must be 4 or 6, got ${String(d.family)}`);
    const hit = cache.get(d.address);
    if (hit !== undefined) return hit;
    const bytes = typeof d.address === "string" ? this.#native.parseAddress(d.address, d.family) : null;
    if (bytes === null) {
      throw new UdpError("ERR_UDP_BAD_DATAGRAM", `${where}.address ${JSON.stringify(d.address)} is not an IPv${d.family} address`);
    }
    if (cache.size >= ADDR_CACHE_MAX) cache.clear();
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, 4);
    cache.set(d.address, words);
    return words;
  }
}
