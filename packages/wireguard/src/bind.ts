/**
 * The Bind seam: how a WireGuard device's edge reaches the network, after wireguard-go's
 * `conn.Bind` (conn/conn.go: Open(port) → receive functions and the port actually bound,
 * Close, SetMark, Send(bufs, endpoint), BatchSize). One interface so that plain UDP
 * (@lattice/udp's UdpBind), and later magicsock (UDP + DERP + disco), and in-memory test
 * fakes plug into the same edge.
 *
 * Differences from wireguard-go, for a single-threaded push model: receiving is a callback
 * per batch rather than goroutines calling ReceiveFuncs; a send batch names one endpoint
 * per datagram (sendmmsg across peers) rather than one per call; endpoints are
 * @lattice/netaddr {@link Endpoint}s (bytes), so no ParseEndpoint is needed here.
 */
import type { Endpoint } from "@lattice/netaddr";

/** Where a {@link Bind} delivers what it receives. */
export interface BindReceiver {
  /**
   * Datagrams `datagrams[i]` from `from[i]`, i < `count`. The datagram memory belongs to
   * the bind and is reused after the call returns (the device decrypts in place and its
   * delivered packets are views into it: drain them before returning). The endpoints may
   * be kept (a peer roams to one).
   */
  onReceive(datagrams: readonly Uint8Array[], from: readonly Endpoint[], count: number): void;
  /** Receiving failed for good (the bind is broken); single failed receives are not reported. */
  onError(err: Error): void;
}

/** A network attachment for the device (see the file comment). */
export interface Bind {
  /**
   * Starts listening on `port` (0 = any) and delivering to `receiver`; returns the port
   * bound. Throws an Error with a stable `code` (and `syscallCode`, e.g. EADDRINUSE) when
   * it cannot; then nothing is open. At most once per Bind object.
   */
  open(port: number, receiver: BindReceiver): number;
  /** The port bound (0 before open / after close). */
  readonly port: number;
  /** A short description for logs, e.g. "UDP bound on port 51820 (IPv4+6)". */
  describe(): string;
  /** One line of counters for logs. */
  describeStats(): string;
  /** Sets SO_MARK (fwmark) on the underlying sockets; 0 clears it. Throws if refused. */
  setMark(mark: number): void;
  /**
   * Sends `datagrams[i]` to `to[i]`, i < `count`; returns how many were sent (the rest
   * were dropped and counted; never throws for a datagram the network refused). A sticky
   * source the network refuses is cleared on that endpoint (`clearSrc`).
   */
  send(datagrams: readonly Uint8Array[], to: readonly Endpoint[], count: number): number;
  /** errno name of the first datagram refused by the last send(), undefined if none. */
  readonly lastSendError: string | undefined;
  /** Stops receiving and releases the sockets. Idempotent. */
  close(): void;
}
