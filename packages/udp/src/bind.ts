/**
 * UdpBind: a plain dual-stack UDP socket as a WireGuard Bind (@lattice/wireguard's
 * `Bind` interface, structurally; wireguard-go's StdNetBind). Received batches become
 * arrays of datagram views and endpoints; consecutive datagrams from the same record
 * (same peer, same local address) share one Endpoint object.
 */
import type { Endpoint } from "@lattice/netaddr";
import { ADDR_RECORD_BYTES, BatchUdpSocket, endpointAt, type DatagramBatch, type UdpBindOptions } from "./socket.js";
import { UdpError } from "./errors.js";

/** The receiving side UdpBind delivers to (same shape as @lattice/wireguard's BindReceiver). */
export interface UdpBindReceiver {
  onReceive(datagrams: readonly Uint8Array[], from: readonly Endpoint[], count: number): void;
  onError(err: Error): void;
}

/** A batched UDP socket behind the Bind interface. */
export class UdpBind {
  #sock: BatchUdpSocket | null = null;
  #last: Endpoint | null = null;
  readonly #data: Uint8Array[] = [];
  readonly #from: Endpoint[] = [];

  /** `opts` are passed to {@link BatchUdpSocket.bind} (port comes from open()). */
  constructor(private readonly opts: Omit<UdpBindOptions, "port"> = {}) {}

  /** Binds `port` (0 = random) and starts reading; throws UdpError ERR_UDP_BIND / ERR_CLOSED. */
  open(port: number, receiver: UdpBindReceiver): number {
    if (this.#sock !== null) throw new UdpError("ERR_CLOSED", "UdpBind is already open");
    const sock = BatchUdpSocket.bind({ ...this.opts, port });
    this.#sock = sock;
    sock.start({ onDatagrams: (b) => this.#deliver(b, receiver), onError: (e) => receiver.onError(e) });
    return sock.port;
  }

  #deliver(b: DatagramBatch, r: UdpBindReceiver): void {
    const n = b.count;
    const data = this.#data;
    const from = this.#from;
    data.length = n;
    from.length = n;
    for (let i = 0; i < n; i++) {
      const off = b.offsets[i]!;
      data[i] = b.buffer.subarray(off, off + b.lengths[i]!);
      const last = this.#last;
      from[i] = last !== null && last.matchesRecord(b.addrs, i * ADDR_RECORD_BYTES) ? last : (this.#last = endpointAt(b, i));
    }
    r.onReceive(data, from, n);
  }

  /** The bound port (0 when not open). */
  get port(): number {
    return this.#sock?.port ?? 0;
  }

  /** The underlying socket (stats, fd), or null when not open. */
  get socket(): BatchUdpSocket | null {
    return this.#sock;
  }

  describe(): string {
    const s = this.#sock;
    return s === null ? "UDP closed" : `UDP bound on port ${s.port} (IPv${s.family === 6 ? "4+6" : "4"})`;
  }

  describeStats(): string {
    const u = this.#sock?.stats;
    if (u === undefined) return "udp closed";
    const per = u.rxBatches > 0 ? (u.rxDatagrams / u.rxBatches).toFixed(1) : "0";
    return (
      `udp rx ${u.rxDatagrams} in ${u.rxBatches} batches (${per}/batch), tx ${u.txDatagrams} dropped ${u.txDropped}` +
      (u.srcCleared > 0 ? `, ${u.srcCleared} refused sources` : "")
    );
  }

  setMark(mark: number): void {
    this.#sock?.setMark(mark);
  }

  send(datagrams: readonly Uint8Array[], to: readonly Endpoint[], count: number): number {
    if (this.#sock === null) throw new UdpError("ERR_CLOSED", "UdpBind is not open");
    return this.#sock.send(datagrams, to, count);
  }

  get lastSendError(): string | undefined {
    return this.#sock?.lastSendError;
  }

  close(): void {
    this.#sock?.close();
    this.#sock = null;
    this.#last = null;
  }
}
