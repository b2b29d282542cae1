/**
 * MagicDNS on the TUN (Tailscale's quad-100): UDP datagrams the host sends to
 * 100.100.100.100:53 or [fd7a:115c:a1e0::53]:53 are taken out of the outbound TUN path
 * before the WireGuard device ({@link MagicDnsEdge.intercept}), answered by the
 * @lattice/dns {@link Resolver}, and the reply (IP+UDP, from the resolver address:53 to
 * the querier) is written back into the TUN. Both addresses lie inside the tailnet routes
 * on the TUN (100.64.0.0/10, fd7a:115c:a1e0::/48), so no extra route is needed.
 *
 * Queries the resolver does not own are forwarded unchanged (Tailscale's forwarder, UDP
 * only): a name under a split-DNS route (DNSConfig.Routes, most specific suffix wins) to
 * that route's resolvers; anything else to DNSConfig.Resolvers when the admin set some,
 * else to the host's upstream resolvers ({@link DgramUpstream}: resolv.conf nameservers
 * read at start, the MagicDNS addresses themselves left out). Servers are tried one after
 * the other within 10 s; no reply → SERVFAIL. Resolvers on tailnet or routed addresses are
 * reached through the tunnel like any host traffic. DoH/DoT resolver addresses (https://,
 * tls://) are skipped (a route left with none of its resolvers usable is forwarded as if
 * absent); a route with an empty resolver list is a MagicDNS suffix: names under it are
 * answered from the zone, unknown ones NXDOMAIN (as Tailscale). At most {@link MAX_PENDING} forwards are in flight; more are
 * dropped and counted. Replies larger than fit the TUN MTU are truncated (TC).
 *
 * TCP: the same resolver answers DNS over TCP at both addresses through a kernel TCP
 * listener and a stateless hairpin in the TUN hook (magicdns-tcp.ts); an upstream's UDP
 * reply with TC set is asked again over TCP (same server, remaining time), so a TCP
 * client gets the full answer and a UDP client one fitted to 1232 bytes. MagicDNS names are served when the netmap's DNSConfig has `Proxied` (the
 * admin's MagicDNS switch) or carries no DNSConfig; forwarding works either way.
 */
import { MAX_UDP_PAYLOAD, Resolver, Zone, fitReply, servfail, type Transport } from "@lattice/dns";
import type { Netmap } from "./netmap.js";
import { buildUdp, parseUdp } from "./udp-packet.js";
import { DnsTcpServer, TcpHairpin, type DnsTcpStats } from "./magicdns-tcp.js";
import { DgramUpstream, QUAD100_V6, parseResolverAddr, type ResolverAddr, type Upstream } from "./magicdns-upstream.js";

// The upstream side lives in magicdns-upstream.ts; re-exported for the daemon's callers.
export { DgramUpstream, QUAD100_V4, QUAD100_V6, parseResolvConf, parseResolverAddr, readUpstreams, tcpQuery, type ResolverAddr, type Upstream } from "./magicdns-upstream.js";

/** Forwards in flight at most; further queries to forward are dropped (counted). */
export const MAX_PENDING = 256;
/** Total time for a forwarded query, ms (Tailscale's forwarder: 10 s). */
export const FORWARD_TIMEOUT_MS = 10_000;

/** MagicDNS counters (UDP and, from DnsTcpStats, the TCP side). */
export interface MagicDnsStats extends DnsTcpStats {
  queries: number;
  answered: number;
  forwarded: number;
  forwardFailed: number;
  dropped: number;
  droppedPendingFull: number;
  droppedMalformed: number;
}

/** The zone of a netmap: self and every peer by its Name (see the file comment for `Proxied`). */
export function zoneOf(nm: Netmap): Zone {
  const enabled = nm.dnsConfig === null || nm.dnsConfig.Proxied === true;
  if (!enabled) return Zone.build({ domain: "", hosts: [] });
  const hosts = [nm.self, ...nm.peers.values()].map((n) => ({ name: n.Name ?? "", addresses: n.Addresses ?? [] }));
  const { routes, localSuffixes } = routesOf(nm);
  return Zone.build({ domain: nm.domain, hosts, localSuffixes, forwardSuffixes: routes.map((r) => r.suffix) });
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A split-DNS route: names equal to or under `suffix` (canonical, no dot) go to `servers`. */
export interface DnsRoute {
  suffix: string;
  servers: ResolverAddr[];
}

/**
 * Split-DNS routes (with resolvers), the resolver-less route suffixes (answered by
 * MagicDNS itself) and the admin's default resolvers of a netmap's DNSConfig.
 */
export function routesOf(nm: Netmap): { routes: DnsRoute[]; localSuffixes: string[]; defaults: ResolverAddr[]; fallbacks: ResolverAddr[] } {
  const addrs = (rs: readonly { Addr?: string }[] | undefined): ResolverAddr[] =>
    (rs ?? []).map((r) => (typeof r?.Addr === "string" ? parseResolverAddr(r.Addr) : null)).filter((a): a is ResolverAddr => a !== null);
  const routes: DnsRoute[] = [];
  const localSuffixes: string[] = [];
  for (const [suffix, rs] of Object.entries(nm.dnsConfig?.Routes ?? {})) {
    const list = Array.isArray(rs) ? rs : [];
    const servers = addrs(list);
    const c = suffix.toLowerCase().replace(/\.$/, "");
    if (c === "") continue;
    if (servers.length > 0) routes.push({ suffix: c, servers });
    else if (list.length === 0) localSuffixes.push(c);
  }
  routes.sort((a, b) => b.suffix.length - a.suffix.length);
  return { routes, localSuffixes, defaults: addrs(nm.dnsConfig?.Resolvers), fallbacks: addrs(nm.dnsConfig?.FallbackResolvers) };
}

/** Dependencies of {@link MagicDnsEdge}. */
export interface MagicDnsDeps {
  /** Writes a packet into the TUN (towards the host). */
  deliver: (packet: Uint8Array) => void;
  /**
   * Where non-tailnet queries go without a route or admin resolvers (the host's
   * nameservers); null = the host has none: DNSConfig.FallbackResolvers, else SERVFAIL.
   */
  upstream: Upstream | null;
  /** An upstream for configured resolvers (split-DNS routes, DNSConfig.Resolvers); default {@link DgramUpstream}. */
  upstreamFor?: (servers: readonly ResolverAddr[]) => Upstream;
  maxPending?: number;
  timeoutMs?: number;
}

/** The TUN side of MagicDNS (see the file comment). */
export class MagicDnsEdge {
  readonly resolver = new Resolver(Zone.build({ domain: "", hosts: [] }));
  readonly stats: MagicDnsStats = {
    queries: 0, answered: 0, forwarded: 0, forwardFailed: 0, dropped: 0, droppedPendingFull: 0, droppedMalformed: 0,
    hairpinIn: 0, hairpinOut: 0, hairpinNoListener: 0, tcpAccepted: 0, tcpRefusedSource: 0, tcpRefusedFull: 0, tcpIdleClosed: 0, tcpBadFrame: 0, tcpQueries: 0,
  };
  readonly #hairpin = new TcpHairpin(this.stats);
  #tcp: DnsTcpServer | null = null;
  #pending = 0;
  #closed = false;
  #routes: Array<{ suffix: string; up: Upstream }> = [];
  #default: Upstream | null = null;

  constructor(private readonly d: MagicDnsDeps) {
    this.#default = d.upstream;
  }

  /**
   * Starts the TCP listener behind the hairpin (see magicdns-tcp.ts); until then TCP to
   * quad-100:53 is dropped. Rejects when neither `::` nor `0.0.0.0` can be bound.
   */
  async startTcp(): Promise<void> {
    if (this.#tcp || this.#closed) return;
    this.#tcp = await DnsTcpServer.listen({ answer: async (q) => this.answer(q, "tcp"), stats: this.stats });
    this.#hairpin.port = this.#tcp.port;
  }

  /** The TCP listener's port (0 = not listening). */
  get tcpPort(): number {
    return this.#hairpin.port;
  }

  /**
   * The reply to one query message (any transport): a local answer at once, a forward's
   * reply as a promise, or null when dropped (malformed, too many forwards in flight).
   * Never throws; the promise never rejects.
   */
  answer(query: Uint8Array, transport: Transport): Uint8Array | null | Promise<Uint8Array | null> {
    this.stats.queries++;
    const d = this.resolver.handle(query, transport);
    if (d.kind === "answer") {
      this.stats.answered++;
      return d.response;
    }
    if (d.kind === "drop") {
      this.stats.dropped++;
      this.stats.droppedMalformed++;
      return null;
    }
    const up = this.#upstreamFor(d.name);
    if (up === null) {
      this.stats.forwardFailed++;
      return servfail(query);
    }
    if (this.#pending >= (this.d.maxPending ?? MAX_PENDING)) {
      this.stats.dropped++;
      this.stats.droppedPendingFull++;
      return null;
    }
    return this.#forward(query, up, transport === "tcp" ? 65535 : MAX_UDP_PAYLOAD);
  }

  /** Rebuilds the zone and the forwarding routes from a netmap (every netmap apply). */
  setNetmap(nm: Netmap): void {
    this.resolver.setZone(zoneOf(nm));
    const make = this.d.upstreamFor ?? ((servers: readonly ResolverAddr[]) => new DgramUpstream(servers));
    const { routes, defaults, fallbacks } = routesOf(nm);
    this.#routes = routes.map((r) => ({ suffix: r.suffix, up: make(r.servers) }));
    // "." = the admin's resolvers, else the host's, else the admin's fallbacks (Tailscale's order).
    this.#default = defaults.length > 0 ? make(defaults) : (this.d.upstream ?? (fallbacks.length > 0 ? make(fallbacks) : null));
  }

  /** The upstream for canonical name `name`: the most specific route, else the default. */
  #upstreamFor(name: string): Upstream | null {
    for (const r of this.#routes) if (name === r.suffix || name.endsWith("." + r.suffix)) return r.up;
    return this.#default;
  }

  /** Forwards in flight. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * True when `p` (an IP packet read from the TUN) is MagicDNS traffic and was consumed:
   * a UDP query to quad-100:53 (answered, forwarded or dropped), or a TCP segment of the
   * hairpin (rewritten and written back into the TUN; see magicdns-tcp.ts). False for
   * everything else. Never throws.
   */
  intercept(p: Uint8Array): boolean {
    const ver = p.length > 0 ? p[0]! >> 4 : 0;
    if (ver === 4) {
      if (p.length < 20 || p[16] !== 100 || p[17] !== 100 || p[18] !== 100 || p[19] !== 100) return false;
      if (p[9] === 6) return this.#tcpSegment(p);
    } else if (ver === 6) {
      if (p.length < 40 || !same(p.subarray(24, 40), QUAD100_V6)) return false;
      if (p[6] === 6) return this.#tcpSegment(p);
    } else {
      return false;
    }
    const u = parseUdp(p);
    if (!u || u.dstPort !== 53) return false;
    // Copies: the TUN read buffer is reused after this call.
    const querier = { src: u.dst.slice(), dst: u.src.slice(), port: u.srcPort };
    const out = this.answer(u.payload.slice(), "udp");
    if (out instanceof Promise) {
      void out.then((r) => {
        if (r) this.#reply(querier, r);
      });
    } else if (out) {
      this.#reply(querier, out);
    }
    return true;
  }

  #tcpSegment(p: Uint8Array): boolean {
    const copy = p.slice(); // the TUN read buffer is reused after this call
    const what = this.#hairpin.outbound(copy);
    if (what === "pass") return false;
    if (what === "deliver" && !this.#closed) this.d.deliver(copy);
    return true;
  }

  async #forward(query: Uint8Array, up: Upstream, max: number): Promise<Uint8Array | null> {
    this.#pending++;
    this.stats.forwarded++;
    const reply = await up.query(query, this.d.timeoutMs ?? FORWARD_TIMEOUT_MS);
    this.#pending--;
    const fitted = reply ? fitReply(reply, max) : null;
    if (!fitted) this.stats.forwardFailed++;
    return fitted ?? servfail(query);
  }

  #reply(q: { src: Uint8Array; dst: Uint8Array; port: number }, payload: Uint8Array): void {
    if (this.#closed) return;
    this.d.deliver(buildUdp(q.src, q.dst, 53, q.port, payload));
  }

  /** Stops delivering replies (forwards still in flight are discarded) and closes the TCP listener. */
  close(): void {
    this.#closed = true;
    this.#hairpin.port = 0;
    this.#tcp?.close();
    this.#tcp = null;
  }
}
