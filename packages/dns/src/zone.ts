/**
 * The MagicDNS zone: the tailnet domain and the names → addresses of self and peers, as
 * the netmap says (Tailscale's dns.Config.Hosts, built in ipn/ipnlocal from each node's
 * `Name` and `Addresses`). Pure data with lookups; rebuilt on every netmap.
 */
import { formatIp, parseIp, parsePrefix } from "@lattice/netaddr";

/** One host of the zone. */
export interface ZoneHost {
  /** FQDN, with or without the trailing dot: "beta.tailnet.example". */
  name: string;
  /** Tailnet addresses as text, plain ("100.64.0.2") or as /32 /128 prefixes. */
  addresses: readonly string[];
}

/** Input of {@link Zone.build}. */
export interface ZoneInput {
  /** The tailnet (MagicDNS) domain, e.g. "tailnet.example"; "" = no MagicDNS suffix. */
  domain: string;
  hosts: readonly ZoneHost[];
  /**
   * More suffixes MagicDNS is authoritative for: split-DNS routes without resolvers
   * (Tailscale: a resolver-less route is a MagicDNS suffix — unknown names NXDOMAIN).
   */
  localSuffixes?: readonly string[];
  /**
   * Suffixes of split-DNS routes with resolvers: a name under one of these that is more
   * specific than the matching local suffix is not ours (forwarded).
   */
  forwardSuffixes?: readonly string[];
}

/** A resolved host. */
export interface ZoneEntry {
  /** Canonical FQDN, lower case, with the trailing dot. */
  fqdn: string;
  v4: Uint8Array[];
  v6: Uint8Array[];
}

/** Lower-cases and strips one trailing dot. */
export function canonName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith(".") ? n.slice(0, -1) : n;
}

function addrBytes(text: string): Uint8Array | null {
  const p = text.includes("/") ? parsePrefix(text) : null;
  if (p) return p.bits === p.bytes.length * 8 ? p.bytes : null;
  return parseIp(text)?.bytes ?? null;
}

/** An immutable lookup table of one netmap's names and addresses. */
export class Zone {
  /** Canonical domain without trailing dot ("" = none). */
  readonly domain: string;
  readonly #byName = new Map<string, ZoneEntry>();
  readonly #byShort = new Map<string, ZoneEntry>();
  readonly #byAddr = new Map<string, ZoneEntry>();
  /** Authoritative suffixes (domain + local suffixes), canonical, longest first. */
  #local: string[] = [];
  #forward: string[] = [];

  private constructor(domain: string) {
    this.domain = domain;
  }

  /**
   * Builds the zone. Hosts with an empty name are skipped; addresses that don't parse
   * are skipped; on a duplicate name or address the first host wins (the netmap order:
   * self first, as Tailscale's map makes self win).
   */
  static build(input: ZoneInput): Zone {
    const z = new Zone(canonName(input.domain));
    const byLength = (a: string, b: string) => b.length - a.length;
    z.#local = [...new Set([z.domain, ...(input.localSuffixes ?? []).map(canonName)])].filter((d) => d !== "").sort(byLength);
    z.#forward = [...new Set((input.forwardSuffixes ?? []).map(canonName))].filter((d) => d !== "").sort(byLength);
    for (const h of input.hosts) {
      const fqdn = canonName(h.name);
      if (fqdn === "" || z.#byName.has(fqdn)) continue;
      const e: ZoneEntry = { fqdn: fqdn + ".", v4: [], v6: [] };
      for (const a of h.addresses) {
        const b = addrBytes(a);
        if (!b) continue;
        (b.length === 4 ? e.v4 : e.v6).push(b);
        const key = formatIp(b);
        if (!z.#byAddr.has(key)) z.#byAddr.set(key, e);
      }
      z.#byName.set(fqdn, e);
      const suffix = "." + z.domain;
      if (z.domain !== "" && fqdn.endsWith(suffix)) {
        const short = fqdn.slice(0, -suffix.length);
        if (!short.includes(".") && !z.#byShort.has(short)) z.#byShort.set(short, e);
      }
    }
    return z;
  }

  /** The host named `name` (canonical, no trailing dot): an FQDN, or a single-label short name. */
  lookupName(name: string): ZoneEntry | undefined {
    return this.#byName.get(name) ?? (name.includes(".") ? undefined : this.#byShort.get(name));
  }

  /** The host owning address `ip` (4 or 16 bytes). */
  lookupAddr(ip: Uint8Array): ZoneEntry | undefined {
    return this.#byAddr.get(formatIp(ip));
  }

  /** True when `name` (canonical) is the domain or under it (or a local suffix, see {@link authority}). */
  inDomain(name: string): boolean {
    return this.authority(name) !== null;
  }

  /**
   * The authoritative suffix `name` (canonical) falls in — the tailnet domain or a
   * resolver-less route, the most specific one — or null when it is outside them or a
   * route with resolvers is more specific still.
   */
  authority(name: string): string | null {
    const under = (n: string, s: string) => n === s || n.endsWith("." + s);
    const local = this.#local.find((s) => under(name, s));
    if (local === undefined) return null;
    const fwd = this.#forward.find((s) => under(name, s));
    return fwd !== undefined && fwd.length > local.length ? null : local;
  }

  /** Number of hosts. */
  get size(): number {
    return this.#byName.size;
  }
}
