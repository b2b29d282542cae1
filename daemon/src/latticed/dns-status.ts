/**
 * What `--accept-dns` tells the host ({@link hostDnsConfigOf}) and the DNS report behind
 * `GET /localapi/v0/dns-status` and `lattice dns status` ({@link buildDnsStatus}). Pure:
 * netmap and prefs in, plain data out.
 */
import type { Netmap } from "./netmap.js";
import type { HostDnsConfig, HostDnsMode } from "./resolvconf.js";

/** The MagicDNS addresses given to the host (Tailscale gives the OS both). */
export const MAGICDNS_NAMESERVERS = ["100.100.100.100", "fd7a:115c:a1e0::53"] as const;

/** GET /localapi/v0/dns-status (the issue-10 contract; field names are fixed). */
export interface DnsStatus {
  /** MagicDNS names are answered (DNSConfig.Proxied, or no DNSConfig at all). */
  MagicDNS: boolean;
  /** The tailnet domain ("" before the first netmap). */
  Domain: string;
  /** How the host resolver is configured right now; "off" while Lattice does not configure it (--accept-dns=false, not running, MagicDNS off). */
  Mode: HostDnsMode | "off";
  /** The resolv.conf read or managed ("" without host integration). */
  ResolvConf: string;
  /** Where quad-100 forwards names no route matches: the admin's resolvers, else the host's own nameservers, else the admin's fallback resolvers. */
  Resolvers: string[];
  /** Split DNS: suffix → resolver addresses (an empty list: answered by MagicDNS). */
  Routes: Record<string, string[]>;
  /** Search domains given to the host (tailnet domain first). */
  SearchDomains: string[];
  /** Nameservers given to the host (empty while Mode is "off"). */
  Nameservers: string[];
}

function canon(d: string): string {
  return d.replace(/\.$/, "").toLowerCase();
}

const DOMAIN_RE = /^[a-z0-9_.-]{1,253}$/;

/** The search domains: tailnet domain, then DNSConfig.Domains (canonical, valid, de-duplicated). */
export function searchDomainsOf(nm: Netmap): string[] {
  const out: string[] = [];
  for (const d of [nm.domain, ...(nm.dnsConfig?.Domains ?? [])]) {
    const c = typeof d === "string" ? canon(d) : "";
    if (c !== "" && DOMAIN_RE.test(c) && !out.includes(c)) out.push(c);
  }
  return out;
}

/**
 * What `--accept-dns` puts in the host resolver: both MagicDNS addresses, the search
 * domains, split-DNS suffixes as match domains, and default-route when the admin set "."
 * resolvers; null (restore the host's own) when CorpDNS is off or the server has
 * MagicDNS off.
 */
export function hostDnsConfigOf(nm: Netmap, corpDns: boolean): HostDnsConfig | null {
  if (!corpDns || nm.dnsConfig?.Proxied === false) return null;
  const search = searchDomainsOf(nm);
  const matchDomains: string[] = [];
  for (const suffix of Object.keys(nm.dnsConfig?.Routes ?? {})) {
    const c = canon(suffix);
    if (c !== "" && DOMAIN_RE.test(c) && !search.includes(c) && !matchDomains.includes(c)) matchDomains.push(c);
  }
  return { nameservers: [...MAGICDNS_NAMESERVERS], search, matchDomains, defaultRoute: (nm.dnsConfig?.Resolvers ?? []).length > 0 };
}

/** Input of {@link buildDnsStatus}. */
export interface DnsStatusInput {
  netmap: Netmap | null;
  /** Mode and file of the host integration; null = none (the host is never touched). */
  host: { mode: HostDnsMode; file: string } | null;
  /** The configuration last applied to the host; null = none (restored / never). */
  applied: HostDnsConfig | null;
  /** The host's own nameservers (read from resolv.conf at start). */
  hostUpstreams: readonly string[];
}

/** The dns-status report. */
export function buildDnsStatus(s: DnsStatusInput): DnsStatus {
  const nm = s.netmap;
  const dc = nm?.dnsConfig ?? null;
  const addrs = (rs: readonly { Addr?: string }[] | undefined): string[] => (rs ?? []).map((r) => r?.Addr).filter((a): a is string => typeof a === "string");
  const admin = addrs(dc?.Resolvers);
  const routes: Record<string, string[]> = {};
  for (const [suffix, rs] of Object.entries(dc?.Routes ?? {})) routes[canon(suffix)] = addrs(Array.isArray(rs) ? rs : []);
  return {
    MagicDNS: nm !== null && (dc === null || dc.Proxied === true),
    Domain: nm?.domain ?? "",
    Mode: s.applied && s.host ? s.host.mode : "off",
    ResolvConf: s.host?.file ?? "",
    Resolvers: admin.length > 0 ? admin : s.hostUpstreams.length > 0 ? [...s.hostUpstreams] : addrs(dc?.FallbackResolvers),
    Routes: routes,
    SearchDomains: s.applied ? [...s.applied.search] : nm ? searchDomainsOf(nm) : [],
    Nameservers: s.applied ? [...s.applied.nameservers] : [],
  };
}
