/**
 * A UDP socket owned by the native addon: dual-stack bind, batched recvmmsg reads with
 * one JS callback per batch, batched sendmmsg writes, SO_MARK.
 */
import { errnoName, type PacketBatch } from "./batch.js";
import { TunError, wrapNative } from "./errors.js";
import { loadNative, type NativeAddon, type ReaderHandle } from "./native.js";

/** Address record size in {@link DatagramBatch.addrs} and send address buffers. */
export const ADDR_RECORD_BYTES = 44;
/** Offset of the local part (sticky source) in an address record. */
const LOCAL = 20;
/** Flag (record byte LOCAL+1) set by the addon when the kernel refused the record's source. */
const SRC_REFUSED = 1;

/**
 * A batch of received datagrams; `addrs` holds one {@link ADDR_RECORD_BYTES}-byte record
 * per datagram (decode with {@link decodeAddress}).
 */
export interface DatagramBatch extends PacketBatch {
  /**
   * Per datagram: remote [family 4|6, 0, port BE u16, address (4 or 16 bytes, zero
   * padded)], then local [family 0|4|6, flags, 0, 0, ifindex BE u32, address (16 bytes)]:
   * the address and interface the datagram arrived at (IP_PKTINFO / IPV6_PKTINFO).
   */
  readonly addrs: Uint8Array;
}

/** The local side of a UDP path: the address a datagram arrived at, or is to be sent from. */
export interface UdpLocal {
  /** IPv4 dotted quad or IPv6 text (same family as the remote address). */
  readonly address: string;
  /** Interface index it arrived on (used when sending only for IPv6 link-local). */
  readonly ifindex: number;
}

/** A UDP endpoint as the socket sees it. */
export interface UdpAddress {
  /** IPv4 dotted quad or IPv6 text. */
  readonly address: string;
  /** Port. */
  readonly port: number;
  /** 4 or 6. */
  readonly family: 4 | 6;
  /**
   * Sticky source. On receive: the local address the datagram was sent to. On send: the
   * local address to send from (IP_PKTINFO / IPV6_PKTINFO); absent = the kernel chooses.
   */
  readonly src?: UdpLocal;
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
  onError(err: TunError): void;
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

function ipText(rec: Uint8Array, off: number, family: number): string {
  if (family === 4) return `${rec[off]}.${rec[off + 1]}.${rec[off + 2]}.${rec[off + 3]}`;
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) parts.push(((rec[off + 2 * i]! << 8) | rec[off + 1 + 2 * i]!).toString(16));
  return compressV6(parts);
}

/**
 * Decodes the address record at `off`: the remote address and port, with `src` (the
 * local address and ifindex the datagram arrived at) when the record carries one of the
 * same family.
 */
export function decodeAddress(rec: Uint8Array, off: number): UdpAddress {
  const port = (rec[off + 2]! << 8) | rec[off + 3]!;
  const family: 4 | 6 = rec[off] === 4 ? 4 : 6;
  const address = ipText(rec, off + 4, family);
  if (rec[off + LOCAL] !== family) return { family, port, address };
  const l = off + LOCAL;
  const ifindex = ((rec[l + 4]! << 24) | (rec[l + 5]! << 16) | (rec[l + 6]! << 8) | rec[l + 7]!) >>> 0;
  return { family, port, address, src: { address: ipText(rec, l + 8, family), ifindex } };
}

function compressV6(parts: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === "0") j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return parts.join(":");
  return `${parts.slice(0, best).join(":")}::${parts.slice(best + bestLen).join(":")}`;
}

/**
 * Encodes an address (and its `src`, if any) into a record at `off`; returns false if
 * the address is unparsable. An unparsable or other-family `src` is left out.
 */
export function encodeAddress(a: UdpAddress, rec: Uint8Array, off: number): boolean {
  rec.fill(0, off, off + ADDR_RECORD_BYTES);
  rec[off + 2] = a.port >>> 8;
  rec[off + 3] = a.port & 0xff;
  if (!encodeIp(a.address, a.family, rec, off + 4)) return false;
  rec[off] = a.family;
  const s = a.src;
  if (s !== undefined) {
    const l = off + LOCAL;
    if (encodeIp(s.address, a.family, rec, l + 8)) {
      rec[l] = a.family;
      rec[l + 4] = s.ifindex >>> 24;
      rec[l + 5] = (s.ifindex >>> 16) & 0xff;
      rec[l + 6] = (s.ifindex >>> 8) & 0xff;
      rec[l + 7] = s.ifindex & 0xff;
    } else {
      rec.fill(0, l, l + ADDR_RECORD_BYTES - LOCAL);
    }
  }
  return true;
}

/** Writes 4 (family 4) or 16 address bytes at `off`; false if unparsable. */
function encodeIp(text: string, family: 4 | 6, rec: Uint8Array, off: number): boolean {
  if (family === 4) {
    const p = text.split(".");
    if (p.length !== 4) return false;
    const q = p.map(Number);
    if (q.some((x) => !(Number.isInteger(x) && x >= 0 && x <= 255))) return false;
    for (let i = 0; i < 4; i++) rec[off + i] = q[i]!;
    return true;
  }
  let addr = text;
  const pct = addr.indexOf("%");
  if (pct >= 0) addr = addr.slice(0, pct);
  const halves = addr.split("::");
  if (halves.length > 2) return false;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const groups: number[] = [];
  const push = (g: string[]): boolean => {
    for (const s of g) {
      if (s.includes(".")) {
        const q = s.split(".").map(Number);
        if (q.length !== 4) return false;
        groups.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
      } else groups.push(parseInt(s, 16));
    }
    return true;
  };
  if (!push(head)) return false;
  const mid = groups.length;
  if (!push(tail)) return false;
  if (halves.length === 2) groups.splice(mid, 0, ...new Array<number>(8 - groups.length).fill(0));
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return false;
  for (let i = 0; i < 8; i++) {
    rec[off + 2 * i] = groups[i]! >>> 8;
    rec[off + 1 + 2 * i] = groups[i]! & 0xff;
  }
  return true;
}

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
  /** Encoded records of address objects seen before (callers reuse endpoint objects). */
  #encoded = new WeakMap<UdpAddress, Uint8Array>();

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
    const native = opts.native ?? loadNative();
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
    if (this.#closed) throw new TunError("ERR_CLOSED", "UDP socket is closed");
    if (this.#reader) throw new TunError("ERR_TUN_READ", "UDP reader already started");
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
        h.onError(new TunError("ERR_TUN_READ", `reading UDP socket failed (${name})`, name));
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
   * Sends datagrams[i] to to[i] with sendmmsg (64 per syscall), from to[i].src when given
   * (sticky source). Returns how many were sent; the rest were dropped (socket buffer full
   * after a short wait, or unreachable). A source the kernel refuses (address removed) is
   * dropped: that datagram goes out from the kernel's choice, and so do later sends to the
   * same `to` object (wireguard-go's ClearSrc); a new endpoint object brings a new source.
   */
  send(datagrams: readonly Uint8Array[], to: readonly UdpAddress[], count = datagrams.length): number {
    if (this.#closed) throw new TunError("ERR_CLOSED", "UDP socket is closed");
    if (count === 0) return 0;
    if (this.#sendAddrs.length < count * ADDR_RECORD_BYTES) this.#sendAddrs = new Uint8Array(count * ADDR_RECORD_BYTES * 2);
    const rec = this.#sendAddrs;
    let anySrc = false;
    for (let i = 0; i < count; i++) {
      const a = to[i]!;
      let enc = this.#encoded.get(a);
      if (enc === undefined) {
        enc = new Uint8Array(ADDR_RECORD_BYTES);
        if (!encodeAddress(a, enc, 0)) enc[0] = 0;
        this.#encoded.set(a, enc);
      }
      if (enc[LOCAL] !== 0) anySrc = true;
      rec.set(enc, i * ADDR_RECORD_BYTES);
    }
    const err = this.#err;
    const n = this.native.udpSend(this.fd, this.family === 6, datagrams, rec, count, this.gso, err);
    this.lastSendError = err[0] === 0 ? undefined : errnoName(err[0]!);
    if (anySrc) {
      for (let i = 0; i < count; i++) {
        if ((rec[i * ADDR_RECORD_BYTES + LOCAL + 1]! & SRC_REFUSED) === 0) continue;
        const enc = this.#encoded.get(to[i]!);
        if (enc !== undefined) enc.fill(0, LOCAL, ADDR_RECORD_BYTES);
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
