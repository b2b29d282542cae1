/**
 * The subnet-router and exit-node flags of `up` and `set` (Tailscale's cmd/tailscale/cli
 * up.go `calcAdvertiseRoutes`, set.go `calcAdvertiseRoutesForSet`, exitnode resolution):
 *
 * - `--advertise-routes=CIDR,…` parses to canonical prefixes (host bits zero, RFC 5952
 *   IPv6 text), deduplicated and sorted (IPv4 first, then by address, then by length); a
 *   prefix with host bits set is refused with the masked form to use instead.
 * - The exit node is advertised as BOTH 0.0.0.0/0 and ::/0 in `AdvertiseRoutes`
 *   (Tailscale's encoding); one without the other in `--advertise-routes` is refused.
 * - Each of `--advertise-routes` / `--advertise-exit-node` changes only its own part of
 *   `AdvertiseRoutes`: given alone, the other part is kept from the current prefs (as
 *   Tailscale's `set` does; Lattice's `up` changes only the flags given too, unless `--reset`).
 * - `--exit-node=NAME|IP` is resolved against the status peers (host name, MagicDNS short
 *   name, FQDN with or without the trailing dot, any tailnet IP of the peer); the peer must
 *   offer an exit node; "" clears.
 *
 * Every refusal is a FlagValueError (exit 2) naming the flag and the whole value.
 */
import { formatPrefix, parseIp, parsePrefix, type Prefix } from "@lattice/netaddr";
import { FlagValueError } from "./errors.js";
import { canonicalIp } from "./resolve.js";
import type { PeerStatus, Status } from "./types.js";

/** IPv4 and IPv6 default routes: together in AdvertiseRoutes they mean "exit node". */
export const EXIT_V4 = "0.0.0.0/0";
export const EXIT_V6 = "::/0";
/** The daemon's limit on AdvertiseRoutes entries (ROUTES-CONTRACT). */
export const MAX_ADVERTISED_ROUTES = 256;

function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i]! - b.bytes[i]!;
  return a.bits - b.bits;
}

/**
 * Parses the value of `--advertise-routes` ("" → []): comma-separated CIDR prefixes, spaces
 * around entries ignored. Returns canonical prefix texts, deduplicated, sorted. Throws
 * FlagValueError for an entry that is not a prefix, one with host bits set
 * (`10.0.0.1/24 has non-address bits set; expected 10.0.0.0/24`), a default route without
 * its other-family counterpart, or more than MAX_ADVERTISED_ROUTES prefixes.
 */
export function parseAdvertiseRoutes(flag: string, value: string): string[] {
  if (value.trim() === "") return [];
  const seen = new Map<string, Prefix>();
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    const slash = entry.lastIndexOf("/");
    const p = parsePrefix(entry);
    if (p === null || slash < 0) {
      const hint = slash < 0 && parseIp(entry) !== null ? ` (a single address is ${entry}/${entry.includes(":") ? 128 : 32})` : "";
      throw new FlagValueError(flag, value, `${JSON.stringify(entry)} is not a valid IP address or CIDR prefix${hint}`);
    }
    const addr = parseIp(entry.slice(0, slash))!;
    const given = `${canonicalIp(entry.slice(0, slash))}/${p.bits}`;
    if (addr.bytes.some((b, i) => b !== p.bytes[i])) {
      throw new FlagValueError(flag, value, `${given} has non-address bits set; expected ${formatPrefix(p)}`);
    }
    seen.set(formatPrefix(p), p);
  }
  const has4 = seen.has(EXIT_V4);
  const has6 = seen.has(EXIT_V6);
  if (has4 && !has6) throw new FlagValueError(flag, value, `${EXIT_V4} advertised without its IPv6 counterpart; also advertise ${EXIT_V6} (or use --advertise-exit-node)`);
  if (has6 && !has4) throw new FlagValueError(flag, value, `${EXIT_V6} advertised without its IPv4 counterpart; also advertise ${EXIT_V4} (or use --advertise-exit-node)`);
  if (seen.size > MAX_ADVERTISED_ROUTES) throw new FlagValueError(flag, value, `${seen.size} routes; at most ${MAX_ADVERTISED_ROUTES}`);
  return [...seen.values()].sort(comparePrefixes).map(formatPrefix);
}

/** Whether a list of routes advertises the exit node (both default routes). */
export function advertisesExitNode(routes: readonly string[] | null | undefined): boolean {
  return (routes ?? []).includes(EXIT_V4) && (routes ?? []).includes(EXIT_V6);
}

/** Subnet routes = everything but the default routes. */
function subnetRoutes(routes: readonly string[]): string[] {
  return routes.filter((r) => r !== EXIT_V4 && r !== EXIT_V6);
}

/**
 * The new AdvertiseRoutes from the flags given, or undefined when neither flag was given.
 * `routesFlag`: the parsed `--advertise-routes` (undefined: not given); `exitFlag`:
 * `--advertise-exit-node` (undefined: not given); `current`: AdvertiseRoutes from the current
 * prefs (used for the part no flag names; pass [] for `up --reset`).
 */
export function calcAdvertiseRoutes(routesFlag: readonly string[] | undefined, exitFlag: boolean | undefined, current: readonly string[]): string[] | undefined {
  if (routesFlag === undefined && exitFlag === undefined) return undefined;
  const subnets = routesFlag === undefined ? subnetRoutes(current) : subnetRoutes(routesFlag);
  const exit = (exitFlag ?? advertisesExitNode(current)) || advertisesExitNode(routesFlag);
  return exit ? [...subnets, EXIT_V4, EXIT_V6] : subnets;
}

/** Whether a peer offers itself as an exit node (approved): ExitNodeOption, or /0 in its AllowedIPs. */
export function offersExitNode(ps: PeerStatus): boolean {
  if (ps.ExitNodeOption === true) return true;
  return (ps.AllowedIPs ?? []).some((a) => a === EXIT_V4 || a === EXIT_V6);
}

/** The name a user knows a peer by: the first label of its MagicDNS name, else HostName. */
function peerLabel(ps: PeerStatus): string {
  const label = (ps.DNSName ?? "").split(".")[0] ?? "";
  return label !== "" ? label : ps.HostName;
}

/**
 * Resolves `--exit-node`'s value to the IP to send as ExitNodeIP ("" clears). Matches a
 * peer's tailnet IP (any spelling), host name, MagicDNS short name or FQDN (with or without
 * the trailing dot), case-insensitively. Throws FlagValueError:
 * `no peer with that name or IP` (+ a hint when the node is not Running: no netmap yet),
 * `peer "b" does not offer an exit node`,
 * `cannot use this node as its own exit node`, `peer "b" has no tailnet IP`.
 */
export function resolveExitNode(flag: string, value: string, st: Status): string {
  const arg = value.trim();
  if (arg === "") return "";
  const peers = Object.values(st.Peer ?? {});
  const ip = canonicalIp(arg);
  const want = arg.toLowerCase().replace(/\.$/, "");
  const matches = (ps: PeerStatus): boolean => {
    if (ip !== null) return (ps.TailscaleIPs ?? []).some((a) => canonicalIp(a) === ip);
    const dns = (ps.DNSName ?? "").toLowerCase().replace(/\.$/, "");
    return (dns !== "" && (dns === want || dns.split(".")[0] === want)) || (ps.HostName ?? "").toLowerCase() === want;
  };
  const found = peers.find(matches);
  if (!found) {
    if (st.Self && matches(st.Self)) throw new FlagValueError(flag, value, "cannot use this node as its own exit node");
    const hint = st.BackendState !== "Running" ? ` (the node is ${st.BackendState}, its peers are not known yet: connect first, then \`lattice set --exit-node\`)` : "";
    throw new FlagValueError(flag, value, `no peer with that name or IP${hint}`);
  }
  if (!offersExitNode(found)) throw new FlagValueError(flag, value, `peer ${JSON.stringify(peerLabel(found))} does not offer an exit node`);
  const first = (found.TailscaleIPs ?? [])[0];
  if (first === undefined) throw new FlagValueError(flag, value, `peer ${JSON.stringify(peerLabel(found))} has no tailnet IP`);
  return canonicalIp(first) ?? first;
}
