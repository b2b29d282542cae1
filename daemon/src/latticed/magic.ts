/**
 * The part of @lattice/magicsock latticed uses (MAGICSOCK-API.md), as a narrow interface
 * the real MagicSock satisfies structurally, plus {@link UdpMagicConn}: a plain-UDP
 * stand-in used until magicsock lands (LAN only: a peer is reached at the first of its
 * netmap Endpoints; no DERP, no disco, no STUN).
 */
import os from "node:os";
import type { DERPMap } from "@lattice/types";
import { Endpoint } from "@lattice/netaddr";
import type { Bind, BindReceiver } from "@lattice/wireguard";
import { UdpBind } from "@lattice/udp";
import { LatticedError } from "./errors.js";

/** A peer as magicsock needs it (from a netmap Node). */
export interface MagicPeer {
  /** 32-byte WireGuard public key. */
  nodeKey: Uint8Array;
  /** 32-byte disco key, null = none. */
  discoKey: Uint8Array | null;
  /** "ip:port" / "[v6]:port" candidates. */
  endpoints: readonly string[];
  /** Home DERP region id, 0 = none. */
  homeDerp: number;
}

/** What status shows of a peer's path. */
export interface PeerPath {
  /** "ip:port" of the direct path in use, "" when relayed or unknown. */
  curAddr: string;
  /** DERP region in use or the peer's home, 0 = none. */
  derpRegionId: number;
  /** Last receive / send, now() ms; 0 = never. */
  lastRecv: number;
  lastSend: number;
  /** Known UDP endpoints. */
  addrs: string[];
}

/** docs/localapi.md NetcheckReport. */
export interface NetcheckReport {
  UDP: boolean;
  IPv4: boolean;
  IPv6: boolean;
  GlobalV4: string;
  GlobalV6: string;
  MappingVariesByDestIP: boolean | null;
  PreferredDERP: number;
  RegionLatency: Record<string, number>;
  RegionV4Latency: Record<string, number>;
  RegionV6Latency: Record<string, number>;
}

/** Result of a disco ping. */
export interface MagicPingResult {
  latencyMs: number;
  /** "ip:port" when direct, "" via DERP. */
  endpoint: string;
  /** 0 when direct. */
  derpRegionId: number;
}

/** The subset of MagicSock latticed uses (a Bind for the device plus path management). */
export interface MagicConn extends Bind {
  /** false: no disco (the plain-UDP stand-in); latticed then answers disco pings with ICMP. MagicSock leaves it undefined. */
  readonly hasDisco?: boolean;
  setNodePrivateKey(k: Uint8Array): void;
  setDerpMap(m: DERPMap): void;
  setPeers(peers: readonly MagicPeer[]): void;
  peerEndpoint(nodeKey: Uint8Array): Endpoint;
  ping(nodeKey: Uint8Array, timeoutMs: number): Promise<MagicPingResult>;
  peerPath(nodeKey: Uint8Array): PeerPath | undefined;
  endpoints(): string[];
  homeDerp(): number;
  netcheck(): Promise<NetcheckReport>;
  stats(): Record<string, number>;
}

/** Options of {@link UdpMagicConn}. */
export interface UdpMagicConnOptions {
  now: () => number;
  /** Our endpoints changed (after open): report them to control. */
  onEndpoints?: (endpoints: string[]) => void;
  /** Local addresses (default: the host's non-internal interface addresses). */
  localAddresses?: () => string[];
  /** The UDP bind (default a new @lattice/udp UdpBind). */
  createUdp?: () => Bind;
}

function hex(k: Uint8Array): string {
  return Buffer.from(k).toString("hex");
}

/** Host addresses usable as endpoints: non-internal IPv4, global IPv6. */
export function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === "IPv4" && !a.address.startsWith("100.")) out.push(a.address);
      else if (a.family === "IPv6" && !a.address.startsWith("fe80") && !a.address.startsWith("fd7a:115c:a1e0")) out.push(a.address);
    }
  }
  return out;
}

/**
 * Plain UDP behind the {@link MagicConn} interface (see the file comment). A peer's
 * WireGuard endpoint is its first parseable netmap endpoint; ping/netcheck report what
 * plain UDP can tell (ping: unsupported, netcheck: UDP and the local families).
 */
export class UdpMagicConn implements MagicConn {
  readonly hasDisco = false;
  readonly #udp: Bind;
  readonly #peers = new Map<string, { ep: Endpoint; epText: string; addrs: string[]; lastRecv: number; lastSend: number }>();
  readonly #byAddr = new Map<string, string>();
  #endpoints: string[] = [];
  readonly #counters = { peersWithoutEndpoint: 0 };

  constructor(private readonly o: UdpMagicConnOptions) {
    this.#udp = o.createUdp?.() ?? new UdpBind();
  }

  open(port: number, receiver: BindReceiver): number {
    const bound = this.#udp.open(port, {
      onReceive: (data, from, n) => {
        const now = this.o.now();
        for (let i = 0; i < n; i++) {
          const k = this.#byAddr.get(from[i]!.toString());
          const p = k !== undefined ? this.#peers.get(k) : undefined;
          if (p) p.lastRecv = now;
        }
        receiver.onReceive(data, from, n);
      },
      onError: (e) => receiver.onError(e),
    });
    const addrs = (this.o.localAddresses ?? hostAddresses)();
    this.#endpoints = addrs.map((a) => (a.includes(":") ? `[${a}]:${bound}` : `${a}:${bound}`));
    this.o.onEndpoints?.(this.endpoints());
    return bound;
  }
  get port(): number {
    return this.#udp.port;
  }
  describe(): string {
    return `${this.#udp.describe()} (plain UDP, no DERP/disco)`;
  }
  describeStats(): string {
    return this.#udp.describeStats();
  }
  setMark(mark: number): void {
    this.#udp.setMark(mark);
  }
  send(datagrams: readonly Uint8Array[], to: readonly Endpoint[], count: number): number {
    const now = this.o.now();
    for (let i = 0; i < count; i++) {
      const k = this.#byAddr.get(to[i]!.toString());
      const p = k !== undefined ? this.#peers.get(k) : undefined;
      if (p) p.lastSend = now;
    }
    return this.#udp.send(datagrams, to, count);
  }
  get lastSendError(): string | undefined {
    return this.#udp.lastSendError;
  }
  close(): void {
    this.#udp.close();
  }

  setNodePrivateKey(_k: Uint8Array): void {}
  setDerpMap(_m: DERPMap): void {}

  setPeers(peers: readonly MagicPeer[]): void {
    const keep = new Set<string>();
    this.#byAddr.clear();
    for (const p of peers) {
      const k = hex(p.nodeKey);
      keep.add(k);
      let ep: Endpoint | null = null;
      let epText = "";
      for (const e of p.endpoints) {
        ep = Endpoint.parse(e);
        if (ep) {
          epText = e;
          break;
        }
      }
      if (!ep) {
        // No endpoint: an address nobody listens on (the discard prefix), so WireGuard
        // has somewhere to send and the packets are lost, as with an unreachable peer.
        this.#counters.peersWithoutEndpoint++;
        ep = Endpoint.parse("[100::1]:9")!;
      }
      const old = this.#peers.get(k);
      this.#peers.set(k, { ep, epText, addrs: [...p.endpoints], lastRecv: old?.lastRecv ?? 0, lastSend: old?.lastSend ?? 0 });
      this.#byAddr.set(ep.toString(), k);
    }
    for (const k of [...this.#peers.keys()]) if (!keep.has(k)) this.#peers.delete(k);
  }

  peerEndpoint(nodeKey: Uint8Array): Endpoint {
    const p = this.#peers.get(hex(nodeKey));
    if (!p) throw new LatticedError("peer_not_found", `no peer with node key ${hex(nodeKey)}`);
    return p.ep;
  }

  ping(_nodeKey: Uint8Array, _timeoutMs: number): Promise<MagicPingResult> {
    return Promise.reject(new LatticedError("bad_request", "disco ping needs magicsock (this build has plain UDP only): use type=ICMP"));
  }

  peerPath(nodeKey: Uint8Array): PeerPath | undefined {
    const p = this.#peers.get(hex(nodeKey));
    if (!p) return undefined;
    return { curAddr: p.lastRecv > 0 ? p.epText : "", derpRegionId: 0, lastRecv: p.lastRecv, lastSend: p.lastSend, addrs: p.addrs };
  }

  endpoints(): string[] {
    return [...this.#endpoints];
  }
  homeDerp(): number {
    return 0;
  }
  netcheck(): Promise<NetcheckReport> {
    return Promise.resolve({
      UDP: this.#udp.port > 0,
      IPv4: this.#endpoints.some((e) => !e.startsWith("[")),
      IPv6: this.#endpoints.some((e) => e.startsWith("[")),
      GlobalV4: "",
      GlobalV6: "",
      MappingVariesByDestIP: null,
      PreferredDERP: 0,
      RegionLatency: {},
      RegionV4Latency: {},
      RegionV6Latency: {},
    });
  }
  stats(): Record<string, number> {
    return { ...this.#counters };
  }
}
