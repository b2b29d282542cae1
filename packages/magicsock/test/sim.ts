// In-memory network for MagicSock tests (run under vitest fake timers): hosts on LANs or
// behind NATs with endpoint-independent mapping and address-and-port-dependent filtering,
// STUN servers, DERP relays, per-link latency and UDP blocking.
import { createHash } from "node:crypto";
import { x25519PublicKey } from "@lattice/crypto";
import type { DerpMessage } from "@lattice/derp";
import { Endpoint } from "@lattice/netaddr";
import { createBindingResponse, parseBindingRequest } from "@lattice/stun";
import type { DERPMap } from "@lattice/types";
import type { Bind, BindReceiver } from "@lattice/wireguard";
import { type DerpLink, type DialDerp, MagicSock, type MagicPeer } from "../src/index.js";

export function seeded(seed: string): (n: number) => Uint8Array {
  let ctr = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(createHash("sha256").update(seed).update(String(ctr++)).digest().subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

export const silentLog = { debug: () => {}, info: () => {}, warn: () => {} };

interface Nat {
  readonly pub: string;
  readonly prefix: string;
  readonly map: Map<string, number>; // local "ip:port" → public port
  readonly rev: Map<number, string>;
  readonly allowed: Set<string>; // "pubPort>remote ip:port"
  nextPort: number;
  /** Endpoint-dependent mapping (a new public port per destination): "symmetric" NAT. */
  readonly symmetric: boolean;
}

const split = (k: string): [string, number] => {
  const i = k.lastIndexOf(":");
  return [k.slice(0, i), Number(k.slice(i + 1))];
};

export class SimNet {
  readonly binds = new Map<string, SimBind>();
  readonly nats: Nat[] = [];
  /** STUN servers (those of {@link simDerpMap}). */
  readonly stun = new Set<string>(["203.0.113.9:3478", "203.0.113.10:3478"]);
  /** One-way latency (ms) between two IPs (after NAT). */
  latency: (a: string, b: string) => number = () => 1;
  /** Return true to drop a UDP datagram (addresses after NAT on the way out). */
  blocked: (src: string, dst: string) => boolean = () => false;
  natDrops = 0;
  private nextPort = 40000;

  addNat(pub: string, prefix: string, symmetric = false): void {
    this.nats.push({ pub, prefix, map: new Map(), rev: new Map(), allowed: new Set(), nextPort: 50000, symmetric });
  }

  allocPort(): number {
    return this.nextPort++;
  }

  private natOf(ip: string): Nat | undefined {
    return this.nats.find((n) => ip.startsWith(n.prefix));
  }

  send(src: string, to: Endpoint, data: Uint8Array): void {
    const [sip] = split(src);
    const dst = to.toString();
    const nat = this.natOf(sip);
    let outSrc = src;
    if (nat !== undefined && !to.address.startsWith(nat.prefix)) {
      const mkey = nat.symmetric ? `${src}>${dst}` : src;
      let p = nat.map.get(mkey);
      if (p === undefined) {
        p = nat.nextPort++;
        nat.map.set(mkey, p);
        nat.rev.set(p, src);
      }
      nat.allowed.add(`${p}>${dst}`);
      outSrc = `${nat.pub}:${p}`;
    }
    const [oip] = split(outSrc);
    if (this.blocked(outSrc, dst)) return;
    const copy = Uint8Array.from(data);
    setTimeout(() => this.arrive(outSrc, to, copy), this.latency(oip, to.address));
  }

  private arrive(src: string, to: Endpoint, data: Uint8Array): void {
    const dst = to.toString();
    if (this.stun.has(dst)) {
      const req = parseBindingRequest(data);
      if (!req.ok) return;
      const from = Endpoint.parse(src)!;
      const resp = createBindingResponse(req.value.transactionId, { family: from.family, ip: from.ip.slice(), port: from.port });
      this.send(dst, from, resp);
      return;
    }
    let local = dst;
    // Another NAT's private addresses are not reachable from outside it.
    const inside = this.natOf(to.address);
    if (inside !== undefined && !src.startsWith(inside.prefix)) return;
    const nat = this.nats.find((n) => n.pub === to.address);
    if (nat !== undefined) {
      const l = nat.rev.get(to.port);
      if (l === undefined || !nat.allowed.has(`${to.port}>${src}`)) {
        this.natDrops++;
        return;
      }
      local = l;
    }
    const b = this.binds.get(local);
    if (b === undefined) return;
    const [ip, port] = split(src);
    b.receiver?.onReceive([data], [Endpoint.fromAddress(ip, port)!], 1);
  }
}

export class SimBind implements Bind {
  receiver: BindReceiver | null = null;
  port = 0;
  lastSendError: string | undefined = undefined;
  /** When true, sends are counted and discarded (benchmarks). */
  mute = false;
  muted = 0;
  constructor(private readonly net: SimNet, readonly ip: string) {}
  get key(): string {
    return `${this.ip}:${this.port}`;
  }
  open(port: number, receiver: BindReceiver): number {
    this.port = port || this.net.allocPort();
    this.receiver = receiver;
    this.net.binds.set(this.key, this);
    return this.port;
  }
  describe(): string {
    return `sim ${this.key}`;
  }
  describeStats(): string {
    return "";
  }
  setMark(): void {}
  send(d: readonly Uint8Array[], to: readonly Endpoint[], n: number): number {
    if (this.mute) {
      this.muted += n;
      return n;
    }
    for (let i = 0; i < n; i++) this.net.send(this.key, to[i]!, d[i]!);
    return n;
  }
  close(): void {
    this.net.binds.delete(this.key);
  }
}

/** DERP relays by host name: packets between logged-in keys, with latency. */
export class SimDerp {
  readonly links = new Map<string, Map<string, SimLink>>(); // host → key hex → link
  latencyMs = 20;
  dials = 0;
  /** When set, dials fail. */
  down = false;
  dial: DialDerp = (url, o) => {
    this.dials++;
    if (this.down) return Promise.reject(new Error("connection refused"));
    const host = new URL(url).hostname;
    const link = new SimLink(this, host, Buffer.from(x25519PublicKey(o.privateKey)).toString("hex"));
    let m = this.links.get(host);
    if (m === undefined) this.links.set(host, (m = new Map()));
    m.set(link.keyHex, link);
    return Promise.resolve(link);
  };
}

export class SimLink implements DerpLink {
  private handlers: ((m: DerpMessage) => void)[] = [];
  private closeHandlers: ((e: Error | null) => void)[] = [];
  preferred = false;
  closed = false;
  constructor(private readonly d: SimDerp, readonly host: string, readonly keyHex: string) {}
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    const to = this.d.links.get(this.host)?.get(Buffer.from(dst).toString("hex"));
    const data = Uint8Array.from(packet);
    const source = Buffer.from(this.keyHex, "hex");
    if (to !== undefined) setTimeout(() => { if (!to.closed) for (const h of to.handlers) h({ kind: "packet", source, data }); }, this.d.latencyMs);
    return true;
  }
  notePreferred(p: boolean): void {
    this.preferred = p;
  }
  onMessage(h: (m: DerpMessage) => void): void {
    this.handlers.push(h);
  }
  onClose(h: (e: Error | null) => void): void {
    this.closeHandlers.push(h);
  }
  close(): void {
    this.closed = true;
    this.d.links.get(this.host)?.delete(this.keyHex);
  }
  /** The relay drops the connection. */
  kill(): void {
    this.close();
    for (const h of this.closeHandlers) h(new Error("relay went away"));
  }
}

/** Two regions, each a relay with STUN at its IPv4 address. */
export function simDerpMap(): DERPMap {
  const region = (id: number, ip: string) => ({
    RegionID: id, RegionCode: `r${id}`, RegionName: `r${id}`,
    Nodes: [{ Name: `${id}a`, RegionID: id, HostName: `derp${id}.sim`, IPv4: ip, STUNPort: 3478 }],
  });
  return { Regions: { "900": region(900, "203.0.113.9"), "901": region(901, "203.0.113.10") } };
}

export interface SimNode {
  readonly ms: MagicSock;
  readonly pub: Uint8Array;
  readonly discoPub: Uint8Array;
  readonly received: { data: Uint8Array; from: string }[];
  readonly bind: SimBind;
  /** onEndpoints / onHomeDerp calls. */
  readonly events: string[];
}

export function simNode(net: SimNet, derp: SimDerp, name: string, ip: string, map: DERPMap = simDerpMap()): SimNode {
  const random = seeded(name);
  const priv = random(32);
  const received: { data: Uint8Array; from: string }[] = [];
  let bind!: SimBind;
  const events: string[] = [];
  const ms = new MagicSock({
    onEndpoints: (e) => events.push(`endpoints ${e.join(",")}`), onHomeDerp: (r) => events.push(`home ${r}`),
    now: () => Date.now(), random, log: silentLog, discoPrivate: random(32),
    createUdp: () => (bind = new SimBind(net, ip)), dialDerp: derp.dial, localAddresses: () => [ip],
  });
  ms.open(0, { onReceive: (d, f, n) => { for (let i = 0; i < n; i++) received.push({ data: Uint8Array.from(d[i]!), from: f[i]!.toString() }); }, onError: () => {} });
  ms.setNodePrivateKey(priv);
  ms.setDerpMap(map);
  return { ms, pub: x25519PublicKey(priv), discoPub: ms.discoPublic, received, bind, events };
}

/** What control would tell `a` about `b`. */
export function peerOf(b: SimNode, endpoints = b.ms.endpoints()): MagicPeer {
  return { nodeKey: b.pub, discoKey: b.discoPub, endpoints, homeDerp: b.ms.homeDerp() };
}

/** A WireGuard-transport-shaped datagram (type 4). */
export function wg(tag: number): Uint8Array {
  const d = new Uint8Array(48);
  d[0] = 4;
  d[16] = tag;
  return d;
}

/** A sends one datagram to B's magic endpoint. */
export function sendTo(a: SimNode, b: SimNode, tag: number): number {
  return a.ms.send([wg(tag)], [a.ms.peerEndpoint(b.pub)], 1);
}
