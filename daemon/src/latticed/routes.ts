/**
 * Subnet routes and exit nodes on the node, the pure half (ROUTES-CONTRACT.md, Tailscale's
 * ipn.Prefs route fields, ipnlocal's peer route selection and the filter's local nets):
 *
 * - {@link parseAdvertiseRoutes}: the AdvertiseRoutes pref — canonical prefixes only
 *   (host bits zero), an exit node as the pair 0.0.0.0/0 + ::/0, at most 256.
 * - {@link peerAllowedIps}: what the engine gives a peer as WireGuard AllowedIPs — its own
 *   addresses always, its subnet routes only with RouteAll (`--accept-routes`), the exit
 *   routes only when it is the selected exit node.
 * - {@link filterLocalNets}: the packet filter's local addresses — own addresses plus the
 *   advertised routes the control server approved (an approved exit: everything), so a
 *   router enforces the policy for the destinations it forwards to.
 * - {@link resolveExitNode}, {@link suggestExitNode}: choosing the exit node.
 *
 * Approval as the control server reports it on the self node: `PrimaryRoutes` and
 * `AllowedIPs` beyond the node's addresses (approved exit routes appear there as
 * 0.0.0.0/0 and ::/0, as headscale and Tailscale's control do).
 */
import { formatIp, formatPrefix, parseIp, parsePrefix } from "@lattice/netaddr";
import type { Node } from "@lattice/types";
import { LatticedError } from "./errors.js";

/** The exit routes (Tailscale's encoding of "exit node": both, always together). */
export const EXIT_ROUTES = ["0.0.0.0/0", "::/0"] as const;
/** At most this many AdvertiseRoutes entries. */
export const MAX_ADVERTISE_ROUTES = 256;

/** Whether `p` is 0.0.0.0/0 or ::/0. */
export function isExitRoute(p: string): boolean {
  return p === "0.0.0.0/0" || p === "::/0";
}

function shown(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? "undefined" : s.length > 80 ? s.slice(0, 80) + "…" : s;
}

/** A prefix in canonical text, or null when `text` is not a prefix. */
export function canonicalPrefix(text: string): string | null {
  const p = parsePrefix(text);
  return p ? formatPrefix(p) : null;
}

/**
 * Validates the AdvertiseRoutes pref. Returns the canonical, de-duplicated list (order
 * kept). Throws LatticedError `bad_request` naming the entry, e.g.
 * `AdvertiseRoutes[1]: "10.0.0.1/24" has non-address bits set; expected 10.0.0.0/24 (got "10.0.0.1/24")`.
 */
export function parseAdvertiseRoutes(v: unknown, field = "AdvertiseRoutes"): string[] {
  if (!Array.isArray(v)) throw new LatticedError("bad_request", `${field}: must be a list of CIDR prefixes like "10.0.0.0/24" (got ${shown(v)})`);
  if (v.length > MAX_ADVERTISE_ROUTES) throw new LatticedError("bad_request", `${field}: at most ${MAX_ADVERTISE_ROUTES} routes (got ${v.length})`);
  const out: string[] = [];
  v.forEach((r, i) => {
    const at = `${field}[${i}]`;
    if (typeof r !== "string") throw new LatticedError("bad_request", `${at}: must be a CIDR prefix string (got ${shown(r)})`);
    const slash = r.lastIndexOf("/");
    const ip = slash > 0 ? parseIp(r.slice(0, slash)) : null;
    const p = parsePrefix(r);
    if (!p || !ip) throw new LatticedError("bad_request", `${at}: ${shown(r)} is not a CIDR prefix like "10.0.0.0/24" or "fd00::/64" (got ${shown(r)})`);
    const canon = formatPrefix(p);
    if (formatIp(ip.bytes) !== formatIp(p.bytes)) throw new LatticedError("bad_request", `${at}: ${shown(r)} has non-address bits set; expected ${canon} (got ${shown(r)})`);
    if (!out.includes(canon)) out.push(canon);
  });
  const v4 = out.includes("0.0.0.0/0");
  const v6 = out.includes("::/0");
  if (v4 !== v6) throw new LatticedError("bad_request", `${field}: ${v4 ? "0.0.0.0/0" : "::/0"} without ${v4 ? "::/0" : "0.0.0.0/0"}: an exit node advertises both 0.0.0.0/0 and ::/0 (got ${shown(v)})`);
  return out;
}

/** What the engine needs of the prefs to pick routes. */
export interface RouteSelection {
  /** `--accept-routes`. */
  routeAll: boolean;
  /** StableNodeID of the selected exit node, "" = none. */
  exitNodeId: string;
  /** The AdvertiseRoutes pref (canonical). */
  advertiseRoutes: readonly string[];
}

/** The selection when nothing is accepted, selected or advertised. */
export const NO_ROUTES: RouteSelection = Object.freeze({ routeAll: false, exitNodeId: "", advertiseRoutes: Object.freeze([]) as readonly string[] });

/** Whether a peer offers an exit node (the control server only sends approved exit routes). */
export function offersExit(n: Node): boolean {
  return (n.AllowedIPs ?? []).some(isExitRoute);
}

/**
 * A peer's WireGuard AllowedIPs under `sel` (see the file comment), a subset of what the
 * control server sent, in its order.
 */
export function peerAllowedIps(peer: Node, sel: RouteSelection): string[] {
  const own = new Set(peer.Addresses.map((a) => canonicalPrefix(a) ?? a));
  return (peer.AllowedIPs ?? []).filter((a) => {
    const c = canonicalPrefix(a) ?? a;
    if (own.has(c)) return true;
    if (isExitRoute(c)) return sel.exitNodeId !== "" && peer.StableID === sel.exitNodeId;
    return sel.routeAll;
  });
}

/** The subnet routes (no addresses, no exit routes) `peerAllowedIps` kept for a peer. */
export function peerSubnetRoutes(peer: Node, sel: RouteSelection): string[] {
  const own = new Set(peer.Addresses.map((a) => canonicalPrefix(a) ?? a));
  return peerAllowedIps(peer, sel)
    .map((a) => canonicalPrefix(a) ?? a)
    .filter((a) => !own.has(a) && !isExitRoute(a));
}

/** The advertised routes the control server approved for the self node (canonical). */
export function approvedOwnRoutes(self: Node, advertised: readonly string[]): string[] {
  const approved = new Set<string>();
  for (const r of [...(self.PrimaryRoutes ?? []), ...(self.AllowedIPs ?? [])]) {
    const c = canonicalPrefix(r);
    if (c) approved.add(c);
  }
  return advertised.filter((r) => approved.has(r));
}

/**
 * An approved exit route as filter local addresses: everything but the tailnet range (a
 * peer's traffic to another tailnet address must go to that node, never hairpin through
 * the exit node and leave with its address).
 */
export const EXIT_LOCAL_RANGES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  "0.0.0.0/0": ["0.0.0.0-100.63.255.255", "100.128.0.0-255.255.255.255"],
  "::/0": ["::-fd7a:115c:a1df:ffff:ffff:ffff:ffff:ffff", "fd7a:115c:a1e1::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
});

/**
 * The filter's local nets: own addresses plus approved advertised routes (see the file
 * comment); an approved exit route counts as every address outside the tailnet range.
 */
export function filterLocalNets(self: Node, advertised: readonly string[]): string[] {
  const out = [...self.Addresses];
  for (const r of approvedOwnRoutes(self, advertised)) for (const x of EXIT_LOCAL_RANGES[r] ?? [r]) if (!out.includes(x)) out.push(x);
  return out;
}

/**
 * The exit node peer for `ip` (a tailnet address). Throws LatticedError `bad_request`
 * `ExitNodeIP: 100.64.0.9 is not a peer offering an exit node` when no peer has it or it
 * offers no exit, and for the node's own address.
 */
export function resolveExitNode(self: Node | null, peers: Iterable<Node>, ipText: string): Node {
  const ip = parseIp(ipText);
  if (!ip) throw new LatticedError("bad_request", `ExitNodeIP: not an IP address (got ${shown(ipText)})`);
  const canon = formatIp(ip.bytes);
  const has = (n: Node): boolean => n.Addresses.some((a) => a.split("/")[0] === canon);
  if (self && has(self)) throw new LatticedError("bad_request", `ExitNodeIP: ${canon} is this node's own address; it cannot be its own exit node`);
  for (const p of peers) if (has(p) && offersExit(p)) return p;
  throw new LatticedError("bad_request", `ExitNodeIP: ${canon} is not a peer offering an exit node`);
}

/** The peer whose StableID is `id` and offers an exit node; throws `bad_request` otherwise. */
export function exitNodeById(self: Node | null, peers: Iterable<Node>, id: string): Node {
  if (self && self.StableID === id) throw new LatticedError("bad_request", `ExitNodeID: ${shown(id)} is this node; it cannot be its own exit node`);
  for (const p of peers) if (p.StableID === id && offersExit(p)) return p;
  throw new LatticedError("bad_request", `ExitNodeID: ${shown(id)} is not a peer offering an exit node`);
}

/** GET /localapi/v0/suggest-exit-node answer (Tailscale's apitype.ExitNodeSuggestionResponse). */
export interface ExitNodeSuggestion {
  ID: string;
  Name: string;
  Location: null;
}

/**
 * Suggests an exit node: among online peers offering one, those with the same home DERP
 * region as this node first, then those with a direct path (`direct(peer)`), then by
 * name. Null when there is none. (Tailscale ranks by measured latency too; latticed has
 * no per-peer latency other than "direct or relayed", so that stands in for it.)
 */
export function suggestExitNode(peers: Iterable<Node>, selfHomeDerp: number, direct: (peer: Node) => boolean): ExitNodeSuggestion | null {
  const cands = [...peers].filter((p) => p.Online === true && !p.Expired && offersExit(p));
  if (cands.length === 0) return null;
  const rank = (p: Node): number => (selfHomeDerp > 0 && p.HomeDERP === selfHomeDerp ? 0 : 2) + (direct(p) ? 0 : 1);
  cands.sort((a, b) => rank(a) - rank(b) || (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
  const best = cands[0]!;
  return { ID: best.StableID, Name: best.Name, Location: null };
}

/** The exit-node fields of the prefs. */
export interface ExitPrefs {
  ExitNodeID: string;
  ExitNodeIP: string;
  AdvertiseRoutes: string[];
}

/**
 * The Health line while the selected exit node (`exitNodeId`, "" = none) cannot carry
 * traffic: gone from the netmap, no longer offering an exit node (approval removed), or
 * offline. Traffic to the internet is then dropped (the default route stays: fail
 * closed), so the user is told why and how to get out of it. null when all is well.
 */
export function exitNodeHealth(exitNodeId: string, peers: Iterable<Node>): string | null {
  if (exitNodeId === "") return null;
  let peer: Node | undefined;
  for (const p of peers) if (p.StableID === exitNodeId) peer = p;
  const why = !peer ? "it is no longer in the network map" : !offersExit(peer) ? "it no longer offers an exit node" : peer.Online === false ? "it is offline" : null;
  if (why === null) return null;
  const name = peer ? peer.Name.replace(/\.$/, "") || exitNodeId : exitNodeId;
  return `exit node ${name} is not available (${why}): internet traffic is dropped until it is back, or clear it with "lattice set --exit-node="`;
}

/**
 * Resolves the exit node a client asked for (`given`: the fields present in the PATCH or
 * up body) into `next` (prefs after the change, modified in place): ExitNodeIP → the
 * peer's ExitNodeID; ExitNodeID → checked, ExitNodeIP set to the peer's first address;
 * "" in either clears both. Throws `bad_request` for an unknown peer, one that offers no
 * exit node, the node itself, and for using an exit node while advertising one (as
 * Tailscale: "cannot advertise an exit node and use an exit node at the same time").
 */
export function applyExitChoice(next: ExitPrefs, given: { ExitNodeID?: string; ExitNodeIP?: string }, self: Node | null, peers: Iterable<Node>): void {
  if (given.ExitNodeIP && given.ExitNodeID) {
    // As Tailscale's EditPrefs: one way of naming the exit node per change, never two that may disagree.
    throw new LatticedError("bad_request", `ExitNodeIP, ExitNodeID: set one of them, not both (got ExitNodeIP ${shown(given.ExitNodeIP)} and ExitNodeID ${shown(given.ExitNodeID)})`);
  }
  if (given.ExitNodeIP !== undefined) {
    if (given.ExitNodeIP === "") {
      next.ExitNodeIP = "";
      next.ExitNodeID = "";
    } else {
      const n = resolveExitNode(self, peers, given.ExitNodeIP);
      next.ExitNodeID = n.StableID;
      next.ExitNodeIP = formatIp(parseIp(given.ExitNodeIP)!.bytes);
    }
  } else if (given.ExitNodeID !== undefined) {
    if (given.ExitNodeID === "") {
      next.ExitNodeIP = "";
      next.ExitNodeID = "";
    } else {
      const n = exitNodeById(self, peers, given.ExitNodeID);
      next.ExitNodeID = n.StableID;
      next.ExitNodeIP = (n.Addresses[0] ?? "").split("/")[0]!;
    }
  }
  if (next.ExitNodeID !== "" && next.AdvertiseRoutes.some(isExitRoute)) {
    throw new LatticedError("bad_request", `ExitNodeIP: cannot use an exit node (${next.ExitNodeIP || next.ExitNodeID}) while advertising this node as one (AdvertiseRoutes has 0.0.0.0/0 and ::/0)`);
  }
}
