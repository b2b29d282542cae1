/**
 * A batch of received datagrams: one per recvmmsg call (GRO-coalesced receives already
 * split into their datagrams).
 */

/** u32 words per datagram in {@link UdpBatch.meta}: offset, length, port, family, address index. */
export const META_STRIDE = 5;

/** A UDP endpoint. */
export interface UdpEndpoint {
  /** IPv4 dotted quad (also for IPv4-mapped sources on a dual-stack socket) or IPv6 text. */
  readonly address: string;
  /** UDP port. */
  readonly port: number;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

/** One received datagram, as {@link UdpBatch.datagram} returns it. */
export interface ReceivedDatagram extends UdpEndpoint {
  /** The payload: a view into {@link UdpBatch.data}. */
  readonly data: Buffer;
}

/**
 * Received datagrams, stored back to back in one Buffer.
 *
 * Lifetime: `data` is a fresh Buffer allocated for this batch only; the socket never
 * writes to it again, so the receiver may decrypt in place and keep views for as long as
 * it likes. `meta` and `addresses` are fresh too.
 */
export class UdpBatch {
  /** Number of datagrams. */
  readonly count: number;
  /** The payloads, back to back (no padding). */
  readonly data: Buffer;
  /**
   * {@link META_STRIDE} u32 per datagram i at `i * META_STRIDE`: byte offset in `data`,
   * length, source port, source family (4|6), index into `addresses`.
   */
  readonly meta: Uint32Array;
  /** The distinct source addresses of the batch (usually one or a few). */
  readonly addresses: readonly string[];

  /** Wraps what the addon delivers. */
  constructor(data: Buffer, meta: Uint32Array, addresses: readonly string[], count: number) {
    this.data = data;
    this.meta = meta;
    this.addresses = addresses;
    this.count = count;
  }

  /** Payload of datagram i (a view, no copy). */
  payload(i: number): Buffer {
    const o = i * META_STRIDE;
    const off = this.meta[o];
    return this.data.subarray(off, off + this.meta[o + 1]);
  }

  /** Byte offset of datagram i in `data`. */
  offset(i: number): number {
    return this.meta[i * META_STRIDE];
  }

  /** Length of datagram i. */
  length(i: number): number {
    return this.meta[i * META_STRIDE + 1];
  }

  /** Source port of datagram i. */
  port(i: number): number {
    return this.meta[i * META_STRIDE + 2];
  }

  /** Source address family of datagram i. */
  family(i: number): 4 | 6 {
    return this.meta[i * META_STRIDE + 3] as 4 | 6;
  }

  /** Source address text of datagram i (the same string object for equal sources). */
  address(i: number): string {
    return this.addresses[this.meta[i * META_STRIDE + 4]];
  }

  /** Datagram i with its source (allocates an object: prefer the accessors in hot loops). */
  datagram(i: number): ReceivedDatagram {
    return { data: this.payload(i), address: this.address(i), port: this.port(i), family: this.family(i) };
  }
}
