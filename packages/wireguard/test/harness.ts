// Test harness: deterministic randomness, a fake clock, IP packet builders and two
// in-memory Devices wired back to back (a "wire" that can drop, capture and reroute).
import { createHash } from "node:crypto";
import { expect } from "vitest";
import { x25519PublicKey, clampScalar } from "@lattice/crypto";
import { Device } from "../src/device.js";
import { Endpoint, type DeviceUpdate, type OutgoingDatagram, type PeerUpdate } from "../src/api.js";
import type { Peer } from "../src/peer.js";

/** Deterministic byte source (BLAKE2s in counter mode over a seed). */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const block = createHash("blake2s256").update(seed).update(String(counter++)).digest();
      const take = Math.min(32, n - off);
      out.set(block.subarray(0, take), off);
      off += take;
    }
    return out;
  };
}

/** A shared fake monotonic clock (ms) and a wall clock derived from it. */
export class FakeClock {
  t = 1_000_000;
  readonly wallBase = Date.UTC(2026, 0, 1);
  now = (): number => this.t;
  wallNow = (): number => this.wallBase + this.t;
}

/** Builds an IPv4 packet src→dst with `payloadLen` bytes of UDP-ish payload. */
export function ipv4(src: string, dst: string, payloadLen = 20, fill = 0xab): Uint8Array {
  const total = 20 + payloadLen;
  const p = new Uint8Array(total).fill(fill);
  p[0] = 0x45; p[1] = 0; p[2] = total >> 8; p[3] = total & 255;
  p[8] = 64; p[9] = 17;
  p.set(src.split(".").map(Number), 12);
  p.set(dst.split(".").map(Number), 16);
  return p;
}

/** Builds an IPv6 packet src→dst (addresses as 16-byte arrays). */
export function ipv6(src: Uint8Array, dst: Uint8Array, payloadLen = 24): Uint8Array {
  const p = new Uint8Array(40 + payloadLen).fill(0xcd);
  p[0] = 0x60; p[1] = 0; p[2] = 0; p[3] = 0;
  p[4] = payloadLen >> 8; p[5] = payloadLen & 255; p[6] = 17; p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  return p;
}

/** Minimal peer update. */
export function peerUpdate(publicKey: Uint8Array, extra: Partial<PeerUpdate> = {}): PeerUpdate {
  return { publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [], ...extra };
}

/** Device config with a private key and peers. */
export function config(privateKey: Uint8Array, peers: PeerUpdate[], replacePeers = false): DeviceUpdate {
  return { privateKey, replacePeers, peers };
}

export interface Node {
  dev: Device;
  priv: Uint8Array;
  pub: Uint8Array;
  ep: Endpoint;
  tunIp: string;
  received: Uint8Array[];
}

const sameEp = (a: Endpoint, b: Endpoint) => a.address === b.address && a.port === b.port;

/** Two devices A and B with each other as peers, and a wire between them. */
export class Pair {
  readonly clock = new FakeClock();
  readonly a: Node;
  readonly b: Node;
  /** Return false to drop a datagram on the wire. */
  filter: (d: OutgoingDatagram, from: "a" | "b") => boolean = () => true;
  /** Every datagram that went on the wire. */
  readonly log: { from: "a" | "b"; data: Uint8Array }[] = [];
  /** Source endpoint B sees for A (can be changed to simulate NAT rebinding / roaming). */
  aSourceAtB: Endpoint;

  constructor(opts: { psk?: Uint8Array; pka?: number; seed?: string; roaming?: boolean } = {}) {
    const seed = opts.seed ?? "pair";
    const mk = (name: string, addr: string, port: number, tunIp: string): Node => {
      const priv = clampScalar(seededRandom(seed + name + "key")(32));
      const dev = new Device({ now: this.clock.now, wallNow: this.clock.wallNow, random: seededRandom(seed + name), ...(opts.roaming === undefined ? {} : { roaming: opts.roaming }) });
      return { dev, priv, pub: x25519PublicKey(priv), ep: Endpoint.fromAddress(addr, port)!, tunIp, received: [] };
    };
    this.a = mk("a", "10.0.0.1", 51820, "192.168.4.1");
    this.b = mk("b", "10.0.0.2", 51821, "192.168.4.2");
    this.aSourceAtB = this.a.ep;
    this.a.dev.applyConfig(config(this.a.priv, [peerUpdate(this.b.pub, {
      endpoint: this.b.ep, allowedIps: [{ address: "192.168.4.2", family: 4, bits: 32 }, { address: "fd00::2", family: 6, bits: 128 }],
      presharedKey: opts.psk,
    })]));
    this.b.dev.applyConfig(config(this.b.priv, [peerUpdate(this.a.pub, {
      allowedIps: [{ address: "192.168.4.1", family: 4, bits: 32 }, { address: "fd00::1", family: 6, bits: 128 }],
      presharedKey: opts.psk,
    })]));
  }

  /** Moves datagrams between the devices until both are quiet. Returns how many moved. */
  pump(): number {
    let moved = 0;
    for (let round = 0; round < 100; round++) {
      const fromA = this.a.dev.takeDatagrams();
      const fromB = this.b.dev.takeDatagrams();
      this.a.received.push(...this.a.dev.takePackets().map((p) => Uint8Array.from(p)));
      this.b.received.push(...this.b.dev.takePackets().map((p) => Uint8Array.from(p)));
      if (fromA.length === 0 && fromB.length === 0) return moved;
      for (const d of fromA) {
        this.log.push({ from: "a", data: Uint8Array.from(d.data) });
        if (sameEp(d.to, this.b.ep) && this.filter(d, "a")) { this.b.dev.receiveDatagram(d.data, this.aSourceAtB); moved++; }
      }
      for (const d of fromB) {
        this.log.push({ from: "b", data: Uint8Array.from(d.data) });
        if (sameEp(d.to, this.a.ep) && this.filter(d, "b")) { this.a.dev.receiveDatagram(d.data, this.b.ep); moved++; }
      }
    }
    throw new Error("network did not settle");
  }

  /** Advances the clock to `until`, firing timers at their deadlines and pumping. */
  advance(ms: number): void {
    const end = this.clock.t + ms;
    for (;;) {
      this.pump();
      const ds = [this.a.dev.nextDeadline(), this.b.dev.nextDeadline()].filter((x): x is number => x !== undefined);
      const next = ds.length ? Math.min(...ds) : Infinity;
      if (next > end) break;
      this.clock.t = Math.max(this.clock.t, next);
      this.a.dev.tick();
      this.b.dev.tick();
    }
    this.clock.t = end;
    this.pump();
  }

  /** Sends a packet A→B (side "a") or B→A. */
  send(from: "a" | "b", payloadLen = 20, fill = 0xab): Uint8Array {
    const s = from === "a" ? this.a : this.b;
    const d = from === "a" ? this.b : this.a;
    const p = ipv4(s.tunIp, d.tunIp, payloadLen, fill);
    s.dev.sendPacket(Uint8Array.from(p));
    return p;
  }

  /** Count of datagrams on the wire of a message type from one side. */
  count(from: "a" | "b", type: number): number {
    return this.log.filter((l) => l.from === from && l.data[0] === type).length;
  }
}

/**
 * White-box access to a device's peer (tests of internal state that has no public view:
 * session nonces, handshake secrets). Keyed by the peer's public key.
 */
export function peerOf(dev: Device, publicKey: Uint8Array): Peer {
  const peers = (dev as unknown as { c: { peers: Map<string, Peer> } }).c.peers;
  const p = peers.get(Buffer.from(publicKey).toString("hex"));
  if (p === undefined) throw new Error("no such peer");
  return p;
}

/** White-box access to a device's static private key and its clamped copy. */
export function staticSecretsOf(dev: Device): { privateKey: Uint8Array | null; clamped: Uint8Array | null } {
  const d = (dev as unknown as { c: { privateKey: Uint8Array | null; staticKeys: { privateKey: Uint8Array } | null } }).c;
  return { privateKey: d.privateKey, clamped: d.staticKeys?.privateKey ?? null };
}

/** A {@link Pair} whose first packet a → b went through: the handshake is complete. */
export function established(opts: ConstructorParameters<typeof Pair>[0] = {}): Pair {
  const net = new Pair(opts);
  net.send("a");
  net.pump();
  expect(net.b.received.length).toBe(1);
  return net;
}
