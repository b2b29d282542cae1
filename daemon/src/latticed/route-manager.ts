/**
 * Keeps the host's routing (router.ts) in line with the netmap and the prefs: builds the
 * {@link RouterConfig} (pure {@link routerConfig}), resolves the addresses that must stay
 * outside an exit node's default route (the control server and the DERP nodes), and says
 * when IP forwarding is off on a node that advertises routes (a Health line).
 *
 * Choices where the contract is silent: expired peers contribute no routes; an exit node
 * that left the netmap keeps the default route on the TUN (traffic is dropped, never sent
 * around the tunnel — fail closed, as Tailscale); host names are looked up with a 2 s
 * bound, an answer is reused for 60 s, and the last answer stays when a lookup fails.
 */
import fs from "node:fs";
import os from "node:os";
import { lookup as dnsLookup } from "node:dns/promises";
import { isTailnetIp, parseIp } from "@lattice/netaddr";
import type { DERPMap, Node } from "@lattice/types";
import type { Netmap } from "./netmap.js";
import type { Prefs } from "./prefs.js";
import type { RouterConfig } from "./router-plan.js";
import { canonicalPrefix, isExitRoute, peerSubnetRoutes, type RouteSelection } from "./routes.js";

/** The Health line of a router with forwarding off (ROUTES-CONTRACT.md, verbatim). */
export const FORWARDING_OFF_HEALTH =
  "IP forwarding is disabled: subnet routes and exit node traffic will not be forwarded; enable it with: sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 (persist in /etc/sysctl.d/99-lattice.conf)";

/** The sysctl files read for {@link FORWARDING_OFF_HEALTH}. */
export const FORWARDING_FILES = { 4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding" } as const;

/** The route selection of the prefs. */
export function routeSelection(p: Pick<Prefs, "RouteAll" | "ExitNodeID" | "AdvertiseRoutes">): RouteSelection {
  return { routeAll: p.RouteAll, exitNodeId: p.ExitNodeID, advertiseRoutes: p.AdvertiseRoutes };
}

/** Whether the prefs that shape routing differ (the engine and the router are reconfigured). */
export function routingPrefsChanged(a: Prefs, b: Prefs): boolean {
  return a.RouteAll !== b.RouteAll || a.ExitNodeID !== b.ExitNodeID || a.ExitNodeAllowLANAccess !== b.ExitNodeAllowLANAccess || a.NoSNAT !== b.NoSNAT || a.AdvertiseRoutes.join() !== b.AdvertiseRoutes.join();
}

/** Everything {@link routerConfig} reads. */
export interface RouterInput {
  peers: Iterable<Node>;
  prefs: Pick<Prefs, "RouteAll" | "ExitNodeID" | "AdvertiseRoutes" | "ExitNodeAllowLANAccess" | "NoSNAT">;
  /** Addresses (no prefix) of the control server and DERP nodes. */
  bypass: readonly string[];
  /** Directly connected LAN prefixes (canonical). */
  lanPrefixes: readonly string[];
}

/** The router config of a running node (see router-plan.ts for what each part does). */
export function routerConfig(i: RouterInput): RouterConfig {
  const sel = routeSelection(i.prefs);
  const routes: string[] = [];
  // A route this node advertises itself stays on its LAN (a standby router never sends its own subnet to the primary).
  const own = new Set(i.prefs.AdvertiseRoutes);
  for (const p of i.peers) if (!p.Expired) for (const r of peerSubnetRoutes(p, sel)) if (!routes.includes(r) && !own.has(r)) routes.push(r);
  const throws: string[] = [];
  if (sel.exitNodeId !== "") {
    routes.push("0.0.0.0/0", "::/0");
    for (const a of i.bypass) {
      const ip = parseIp(a);
      const c = ip && !isTailnetIp(ip.bytes) ? canonicalPrefix(`${a}/${ip.family === 4 ? 32 : 128}`) : null;
      if (c && !throws.includes(c)) throws.push(c);
    }
    if (i.prefs.ExitNodeAllowLANAccess) for (const l of i.lanPrefixes) if (!throws.includes(l)) throws.push(l);
    // The subnets this node routes for the tailnet stay on its LAN (main table), or the
    // exit node's default route would catch them: neither the tailnet nor this host could
    // reach them while an exit node is in use.
    for (const r of i.prefs.AdvertiseRoutes) if (!isExitRoute(r) && !throws.includes(r)) throws.push(r);
  }
  return { routes, throws, forward: i.prefs.AdvertiseRoutes.length > 0 ? { snat: !i.prefs.NoSNAT } : null };
}

/** The host names and literal addresses an exit node's default route must not catch. */
export function bypassHosts(controlUrl: string, derp: DERPMap | null): string[] {
  const out: string[] = [];
  const add = (h: string | undefined): void => {
    if (h && !out.includes(h)) out.push(h);
  };
  try {
    add(new URL(controlUrl).hostname.replace(/^\[|\]$/g, ""));
  } catch {
    /* no control URL yet */
  }
  for (const r of Object.values(derp?.Regions ?? {})) {
    for (const n of r.Nodes ?? []) {
      if (n.IPv4 || n.IPv6) {
        add(n.IPv4);
        add(n.IPv6);
      } else add(n.HostName);
    }
  }
  return out;
}

/** Directly connected LAN prefixes of the host (not the TUN, not loopback/link-local/tailnet). */
export function hostLanPrefixes(tunName: string): string[] {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (name === tunName) continue;
    for (const a of addrs ?? []) {
      if (a.internal || !a.cidr) continue;
      const ip = parseIp(a.address.split("%")[0]!);
      if (!ip || isTailnetIp(ip.bytes)) continue;
      if (ip.family === 4 ? ip.bytes[0] === 169 && ip.bytes[1] === 254 : ip.bytes[0] === 0xfe && (ip.bytes[1]! & 0xc0) === 0x80) continue;
      const c = canonicalPrefix(a.cidr.replace(/%[^/]*/, ""));
      if (c && !out.includes(c)) out.push(c);
    }
  }
  return out;
}

/** Dependencies of {@link RouteManager}. */
export interface RouteManagerDeps {
  router: { set(cfg: RouterConfig | null): Promise<void> };
  /** All addresses of a host name (rejects when unknown). */
  lookup?: (host: string) => Promise<string[]>;
  lanPrefixes: () => string[];
  /** A sysctl file's content, null when unreadable. */
  readSysctl?: (path: string) => string | null;
  lookupTimeoutMs?: number;
  /** Monotonic ms (answers are reused for {@link LOOKUP_TTL_MS}). */
  now?: () => number;
}

/** How long a host name's addresses are reused before looking it up again. */
export const LOOKUP_TTL_MS = 60_000;

const defaultLookup = async (host: string): Promise<string[]> => (await dnsLookup(host, { all: true })).map((a) => a.address);
const defaultReadSysctl = (p: string): string | null => {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return null;
  }
};

/** See the file comment. */
export class RouteManager {
  readonly #resolved = new Map<string, { addrs: string[]; at: number }>();
  /** The last failure of the router, cleared by a successful apply. */
  #error: string | null = null;

  constructor(private readonly d: RouteManagerDeps) {}

  async #addresses(host: string): Promise<string[]> {
    if (parseIp(host)) return [host];
    const now = (this.d.now ?? performance.now.bind(performance))();
    const known = this.#resolved.get(host);
    if (known && now - known.at < LOOKUP_TTL_MS) return known.addrs;
    const lookup = this.d.lookup ?? defaultLookup;
    let timer: NodeJS.Timeout | undefined;
    try {
      const got = await Promise.race([lookup(host), new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error("timeout")), this.d.lookupTimeoutMs ?? 2_000)))]);
      this.#resolved.set(host, { addrs: got, at: now });
      return got;
    } catch {
      return known?.addrs ?? [];
    } finally {
      clearTimeout(timer);
    }
  }

  /** Applies the routing of a running node with `nm` and `prefs`. Rejects `router_setup`. */
  async apply(nm: Netmap, prefs: Prefs): Promise<void> {
    const bypass: string[] = [];
    if (prefs.ExitNodeID !== "") for (const h of bypassHosts(prefs.ControlURL, nm.derpMap)) bypass.push(...(await this.#addresses(h)));
    const lan = prefs.ExitNodeID !== "" && prefs.ExitNodeAllowLANAccess ? this.d.lanPrefixes() : [];
    await this.#set(routerConfig({ peers: nm.peers.values(), prefs, bypass, lanPrefixes: lan }));
  }

  async #set(cfg: RouterConfig | null): Promise<void> {
    try {
      await this.d.router.set(cfg);
      this.#error = null;
    } catch (e) {
      this.#error = (e as Error).message;
      throw e;
    }
  }

  /** Removes all routing of ours (down, logout, expiry, shutdown). */
  down(): Promise<void> {
    return this.#set(null);
  }

  /**
   * Health lines: the last router failure ("configuring routes failed: …") until an apply
   * succeeds; forwarding off while advertising routes (IPv4 routes: ip_forward; IPv6
   * routes: ipv6 forwarding).
   */
  health(prefs: Pick<Prefs, "AdvertiseRoutes">): string[] {
    const out = this.#error ? [this.#error] : [];
    if (prefs.AdvertiseRoutes.length === 0) return out;
    const read = this.d.readSysctl ?? defaultReadSysctl;
    const off = (f: 4 | 6): boolean => read(FORWARDING_FILES[f])?.trim() === "0";
    const v4 = prefs.AdvertiseRoutes.some((r) => !r.includes(":") || isExitRoute(r));
    const v6 = prefs.AdvertiseRoutes.some((r) => r.includes(":"));
    if ((v4 && off(4)) || (v6 && off(6))) out.push(FORWARDING_OFF_HEALTH);
    return out;
  }
}
