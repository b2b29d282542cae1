/**
 * The data path of latticed (Tailscale's wgengine, cut small): one TUN, the sans-IO
 * WireGuard device behind lattice-wg's {@link WgEdge}, magicsock as the device's Bind,
 * and the packet filter as the edge's hook. {@link Engine.configure} applies a netmap:
 * the node key as the device's private key, the peers (public key, AllowedIPs = the
 * peer's addresses, its subnet routes with RouteAll, the exit routes for the selected
 * exit node — routes.ts peerAllowedIps; endpoint = magicsock's endpoint for the peer;
 * expired peers left out), the TUN addresses, and a new {@link Filter} swapped in
 * atomically (sharing the old one's flows and counters) whose local nets are the own
 * addresses plus the approved advertised routes (routes.ts filterLocalNets).
 *
 * Filter placement: `runIn` on every packet decrypted from a peer before the TUN write
 * (dropped packets counted by reason); `runOut` on every packet read from the TUN
 * (records the flows this node starts). Without a netmap the filter refuses everything
 * inbound (fail closed). The port-22 diversion (divert.ts) runs after `runIn` and
 * before `runOut`, so the filter always sees port 22.
 *
 * MagicDNS: the outbound hook first hands packets to {@link MagicDnsEdge}; DNS queries to
 * 100.100.100.100 / fd7a:115c:a1e0::53 are answered back into the TUN and never reach a
 * peer (the edge counts them in `filteredOut`; MagicDNS has its own counters, dnsStats).
 * The zone is rebuilt on every configure. DNS over TCP at those addresses goes through a
 * kernel listener and a stateless hairpin in the same hook (magicdns-tcp.ts), started with
 * the engine; packets from peers with a quad-100 source address are dropped inbound
 * (counted as `droppedQuad100Source`), so only our own hairpin can reach that listener.
 *
 * MTU: 1280, as Tailscale (the IPv6 minimum: safe over any path incl. DERP and nested
 * tunnels), not lattice-wg's 1420.
 */
import { Filter } from "@lattice/filter";
import { formatIp, parseIp, parsePrefix } from "@lattice/netaddr";
import { parseKey, type Node } from "@lattice/types";
import type { AllowedIp, DeviceUpdate, PeerUpdate } from "@lattice/wireguard";
import type { Tun } from "@lattice/tun";
import { WgEdge, type EdgeDevice } from "../wg/edge.js";
import type { Logger as WgLogger } from "../wg/log.js";
import { LatticedError } from "./errors.js";
import { buildEchoRequest, parseEchoReply } from "./icmp.js";
import { MagicDnsEdge, type MagicDnsStats, type Upstream } from "./magicdns.js";
import { fromQuad100 } from "./magicdns-tcp.js";
import type { MagicConn, MagicPeer } from "./magic.js";
import { SshDivert } from "./divert.js";
import type { Netmap } from "./netmap.js";
import { NO_ROUTES, filterLocalNets, peerAllowedIps, type RouteSelection } from "./routes.js";
import type { TunConfig } from "./tun-config.js";

/** latticed's TUN MTU (see the file comment). */
export const LATTICED_MTU = 1280;

/** Per-peer device counters. */
export interface PeerCounters {
  rxBytes: number;
  txBytes: number;
  /** Wall-clock ms of the last handshake, 0 = never. */
  lastHandshake: number;
}

/** Dependencies of {@link Engine}. */
export interface EngineDeps {
  tun: Tun;
  device: EdgeDevice;
  magic: MagicConn;
  tunConfig: Pick<TunConfig, "up" | "setAddresses">;
  now: () => number;
  random: (n: number) => Uint8Array;
  log: WgLogger;
  onFatal: (e: Error) => void;
  /** Where MagicDNS forwards non-tailnet queries (null/absent: SERVFAIL). */
  dnsUpstream?: Upstream | null;
}

function allowedIp(text: string): AllowedIp | null {
  const p = parsePrefix(text);
  return p ? { address: formatIp(p.bytes), family: p.family, bits: p.bits } : null;
}

function keyHex(k: Uint8Array): string {
  return Buffer.from(k).toString("hex");
}

/** The running data path. */
export class Engine {
  readonly #edge: WgEdge;
  #filter: Filter | null = null;
  /** Peers configured in the device: node key hex → what was configured. */
  readonly #configured = new Map<string, { allowed: string; ep: string }>();
  #privateKey: Uint8Array | null = null;
  readonly #pings = new Map<number, { src: string; resolve: (ms: number) => void; sentAt: number }>();
  #pingSeq = 0;
  #selfAddrs: string[] = [];
  /** Port-22 diversion to the embedded SSH server (off until latticed's SSH service turns it on). */
  readonly divert: SshDivert;
  readonly #dns: MagicDnsEdge;
  #droppedQuad100Source = 0;

  constructor(private readonly d: EngineDeps) {
    this.divert = new SshDivert(d.now);
    this.#dns = new MagicDnsEdge({ deliver: (p) => this.#edge.deliver([p]), upstream: d.dnsUpstream ?? null });
    this.#edge = new WgEdge({
      device: d.device,
      tun: d.tun,
      createBind: () => d.magic,
      now: d.now,
      log: d.log,
      onFatal: d.onFatal,
      filter: { inbound: (p) => this.#inbound(p), outbound: (p) => this.#outbound(p) },
    });
  }

  /** Binds magicsock on `port` (0 = any), starts the TUN reader, brings the link up with the tailnet routes. */
  async start(port: number): Promise<void> {
    this.#edge.start(port);
    await this.d.tunConfig.up();
    await this.#dns.startTcp();
  }

  /** The MagicDNS TCP listener's port (0 = none). */
  get dnsTcpPort(): number {
    return this.#dns.tcpPort;
  }

  /** Inbound packets from peers claiming a quad-100 source (dropped). */
  get droppedQuad100Source(): number {
    return this.#droppedQuad100Source;
  }

  /**
   * SO_MARK of the UDP socket (kept across rebinds by the edge): latticed's own packets
   * bypass routing table 52 (router-plan.ts). Throws when the mark cannot be set (no
   * CAP_NET_ADMIN).
   */
  setFwmark(mark: number): void {
    this.#edge.apply({ replacePeers: false, peers: [], fwmark: mark });
  }

  /** The UDP port bound. */
  get port(): number {
    return this.#edge.port;
  }

  /** Edge counters (incl. filter refusals). */
  get edgeStats(): WgEdge["stats"] {
    return this.#edge.stats;
  }

  /** MagicDNS counters. */
  get dnsStats(): Readonly<MagicDnsStats> {
    return this.#dns.stats;
  }

  /** Filter counters by reason, or null before the first netmap. */
  filterCounters(): ReturnType<Filter["counters"]> | null {
    return this.#filter?.counters() ?? null;
  }

  #inbound(p: Uint8Array): boolean {
    if (fromQuad100(p)) {
      this.#droppedQuad100Source++;
      return false;
    }
    if (this.#pings.size > 0) {
      const r = parseEchoReply(p);
      if (r) {
        const ping = this.#pings.get(r.id);
        if (ping && ping.src === formatIp(r.src)) {
          this.#pings.delete(r.id);
          ping.resolve(this.d.now() - ping.sentAt);
          return false;
        }
      }
    }
    const f = this.#filter;
    // The filter sees the packet as the peer sent it (port 22); the diversion comes after.
    return f !== null && f.runIn(p, this.d.now()).accept && this.divert.inbound(p);
  }

  #outbound(p: Uint8Array): boolean {
    // MagicDNS (100.100.100.100:53, [fd7a:115c:a1e0::53]:53) is answered here, not sent to a peer.
    if (this.#dns.intercept(p)) return false;
    // Replies of the SSH server leave as port 22 (before the filter records the flow).
    this.divert.outbound(p);
    const f = this.#filter;
    return f === null ? true : f.runOut(p, this.d.now()).accept;
  }

  /**
   * Applies a netmap (see the file comment). `nodePrivate` is the node key; `routes` the
   * prefs' route selection. The device and filter are reconfigured synchronously; the TUN
   * addresses afterwards (iproute2).
   */
  async configure(nm: Netmap, nodePrivate: Uint8Array, routes: RouteSelection = NO_ROUTES): Promise<void> {
    const peers = [...nm.peers.values()].filter((p) => !p.Expired && parseKey("node", p.Key) !== null);
    this.d.magic.setNodePrivateKey(nodePrivate);
    if (nm.derpMap) this.d.magic.setDerpMap(nm.derpMap);
    this.d.magic.setPeers(peers.map(magicPeer));
    const update: DeviceUpdate = { replacePeers: false, peers: [] };
    if (this.#privateKey === null || keyHex(this.#privateKey) !== keyHex(nodePrivate)) {
      update.privateKey = nodePrivate;
      this.#privateKey = nodePrivate;
    }
    const seen = new Set<string>();
    for (const p of peers) {
      const key = parseKey("node", p.Key)!;
      const k = keyHex(key);
      seen.add(k);
      const ep = this.d.magic.peerEndpoint(key);
      const allowed = peerAllowedIps(p, routes).map(allowedIp).filter((a): a is AllowedIp => a !== null);
      const sig = { allowed: JSON.stringify(allowed), ep: ep.toString() };
      const old = this.#configured.get(k);
      if (old && old.allowed === sig.allowed && old.ep === sig.ep) continue;
      this.#configured.set(k, sig);
      const pu: PeerUpdate = { publicKey: key, remove: false, updateOnly: false, endpoint: ep, replaceAllowedIps: true, allowedIps: allowed };
      update.peers.push(pu);
    }
    for (const k of [...this.#configured.keys()]) {
      if (seen.has(k)) continue;
      this.#configured.delete(k);
      update.peers.push({ publicKey: new Uint8Array(Buffer.from(k, "hex")), remove: true, updateOnly: false, replaceAllowedIps: false, allowedIps: [] });
    }
    if (update.privateKey !== undefined || update.peers.length > 0) this.#edge.apply(update);
    this.#selfAddrs = [...nm.self.Addresses];
    this.#dns.setNetmap(nm);
    this.#filter = Filter.fromRules(nm.packetFilter, filterLocalNets(nm.self, routes.advertiseRoutes), this.#filter ? { shareStateWith: this.#filter } : {});
    if (this.#filter.errors.length > 0) this.d.log.info(`packet filter: ${this.#filter.errors.length} rule entries skipped: ${this.#filter.errors.map((e) => e.message).join("; ")}`);
    await this.d.tunConfig.setAddresses(nm.self.Addresses);
  }

  /** Removes every peer (down, key expiry, logout); the TUN and its addresses stay. */
  clearPeers(): void {
    this.#configured.clear();
    this.d.magic.setPeers([]);
    this.#edge.apply({ replacePeers: true, peers: [] });
  }

  /** Per-peer counters from the device, by node key hex. */
  peerCounters(): Map<string, PeerCounters> {
    const out = new Map<string, PeerCounters>();
    for (const p of this.#edge.snapshot().peers) {
      out.set(keyHex(p.publicKey), {
        rxBytes: Number(p.rxBytes),
        txBytes: Number(p.txBytes),
        lastHandshake: p.lastHandshakeTimeSec * 1000 + Math.floor(p.lastHandshakeTimeNsec / 1e6),
      });
    }
    return out;
  }

  /**
   * ICMP echo through the tunnel to `ip` (a peer's tailnet address): resolves with the
   * round trip in ms; rejects LatticedError `timeout` after `timeoutMs`, `no_netmap`
   * without an own address of that family.
   */
  pingIcmp(ip: string, timeoutMs: number): Promise<number> {
    const dst = parseIp(ip);
    if (!dst) return Promise.reject(new LatticedError("bad_request", `ip: not an IP address (got ${JSON.stringify(ip)})`));
    const srcText = this.#selfAddrs.map((a) => a.split("/")[0]!).find((a) => parseIp(a)?.family === dst.family);
    if (srcText === undefined) return Promise.reject(new LatticedError("no_netmap", `no tailnet IPv${dst.family} address of our own to ping from`));
    const src = parseIp(srcText)!;
    let id = 0;
    do id = (this.d.random(2)[0]! << 8) | this.d.random(1)[0]!;
    while (this.#pings.has(id));
    const seq = ++this.#pingSeq & 0xffff;
    const pkt = buildEchoRequest(src.bytes, dst.bytes, id, seq, this.d.random(16));
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pings.delete(id);
        reject(new LatticedError("timeout", `no ICMP echo reply from ${ip} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pings.set(id, {
        src: formatIp(dst.bytes),
        sentAt: this.d.now(),
        resolve: (ms) => {
          clearTimeout(timer);
          resolve(ms);
        },
      });
      this.#edge.inject([pkt]);
    });
  }

  /** One line of I/O counters. */
  describeStats(): string {
    return this.#edge.describeStats();
  }

  /** Closes the edge (magicsock, TUN: the kernel removes the interface with its addresses and routes). */
  close(): void {
    this.#dns.close();
    this.#edge.close();
  }
}

/** A netmap peer as magicsock takes it. */
export function magicPeer(p: Node): MagicPeer {
  return {
    nodeKey: parseKey("node", p.Key)!,
    discoKey: parseKey("disco", p.DiscoKey),
    endpoints: p.Endpoints ?? [],
    homeDerp: p.HomeDERP ?? 0,
  };
}
