// In-memory stand-ins for the edge's Tun and Bind interfaces (no root, no sockets).
import type { PacketBatch, Tun, TunHandlers, TunStats } from "@lattice/tun";
import { Endpoint } from "@lattice/netaddr";
import type { Bind, BindReceiver } from "@lattice/wireguard";

/** A TUN that records writes and lets the test inject read batches and flip IFF_UP. */
export class FakeTun implements Tun {
  readonly name = "fake0";
  mtu = 1420;
  readonly stats: TunStats = { rxPackets: 0, rxBatches: 0, txPackets: 0, txDropped: 0, rxErrors: 0 };
  lastWriteError: string | undefined = undefined;
  written: Uint8Array[] = [];
  up = true;
  gone = false;
  closed = false;
  handlers: TunHandlers | null = null;
  start(h: TunHandlers): void {
    this.handlers = h;
  }
  /** Delivers `packets` as one read batch (one backing buffer, as the addon does). */
  inject(packets: Uint8Array[]): void {
    const buffer = new Uint8Array(packets.reduce((n, p) => n + p.length, 0));
    const offsets = new Uint32Array(packets.length);
    const lengths = new Uint32Array(packets.length);
    let off = 0;
    packets.forEach((p, i) => {
      buffer.set(p, off);
      offsets[i] = off;
      lengths[i] = p.length;
      off += p.length;
    });
    const batch: PacketBatch = { buffer, offsets, lengths, count: packets.length };
    this.stats.rxPackets += packets.length;
    this.stats.rxBatches++;
    this.handlers!.onPackets(batch);
    buffer.fill(0xee); // the read buffer is reused: whatever the edge kept must be a copy
  }
  write(packets: readonly Uint8Array[], count = packets.length): number {
    this.lastWriteError = undefined;
    if (!this.up) {
      this.lastWriteError = "EIO";
      this.stats.txDropped += count;
      return 0;
    }
    for (let i = 0; i < count; i++) this.written.push(Uint8Array.from(packets[i]!));
    this.stats.txPackets += count;
    return count;
  }
  linkUp(): boolean | undefined {
    if (this.gone) throw Object.assign(new Error("interface deleted"), { code: "ERR_TUN_GONE" });
    return this.up;
  }
  close(): void {
    this.closed = true;
  }
}

/** An in-memory network of FakeBinds, keyed by port, on one address. */
export class FakeNet {
  readonly binds = new Map<number, FakeBind>();
  nextPort = 40000;
  constructor(readonly address = "192.0.2.1") {}
  bind(): FakeBind {
    return new FakeBind(this);
  }
}

/**
 * A Bind on a FakeNet: send() records each datagram and, when it is addressed to the
 * net's address and a bound port, delivers a copy there on the next turn of the event
 * loop, from this bind's endpoint (with the net's address as sticky source).
 */
export class FakeBind implements Bind {
  port = 0;
  mark = 0;
  closed = false;
  lastSendError: string | undefined = undefined;
  sent: { data: Uint8Array; to: Endpoint }[] = [];
  receiver: BindReceiver | null = null;
  constructor(private readonly net: FakeNet) {}
  open(port: number, receiver: BindReceiver): number {
    const p = port === 0 ? this.net.nextPort++ : port;
    if (this.net.binds.has(p)) throw Object.assign(new Error(`port ${p} in use`), { code: "ERR_UDP_BIND", syscallCode: "EADDRINUSE" });
    this.port = p;
    this.receiver = receiver;
    this.net.binds.set(p, this);
    return p;
  }
  describe(): string {
    return `fake port ${this.port}`;
  }
  describeStats(): string {
    return `fake sent ${this.sent.length}`;
  }
  setMark(mark: number): void {
    this.mark = mark;
  }
  send(datagrams: readonly Uint8Array[], to: readonly Endpoint[], count: number): number {
    if (this.closed) throw new Error("closed");
    for (let i = 0; i < count; i++) {
      const data = Uint8Array.from(datagrams[i]!);
      const dst = to[i]!;
      this.sent.push({ data, to: dst });
      const peer = dst.address === this.net.address ? this.net.binds.get(dst.port) : undefined;
      if (peer === undefined) continue;
      const from = Endpoint.fromAddress(this.net.address, this.port, { address: this.net.address, ifindex: 1 })!;
      setImmediate(() => {
        if (!peer.closed) peer.deliver([data], [from]);
      });
    }
    return count;
  }
  /** Delivers one batch to this bind's receiver as if it arrived from `from`. */
  deliver(datagrams: Uint8Array[], from: Endpoint[]): void {
    this.receiver!.onReceive(datagrams, from, datagrams.length);
  }
  close(): void {
    this.closed = true;
    if (this.net.binds.get(this.port) === this) this.net.binds.delete(this.port);
  }
}

/** An endpoint on the fake net. */
export const fakeEp = (port: number, address = "192.0.2.9", src?: string): Endpoint =>
  Endpoint.fromAddress(address, port, src === undefined ? undefined : { address: src, ifindex: 2 })!;
