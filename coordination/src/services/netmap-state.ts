/**
 * Builds the mapper's in-memory {@link NetmapState} from database rows and the compiled
 * policy (compiled by netmap-builder.ts). Pure functions plus a small cache so unchanged
 * nodes stay the same objects.
 */
import { loginName, type CompiledPolicy } from "@lattice/policy";
import type { DERPMap, DNSConfig, Node, NodeID, UserID, UserProfile } from "@lattice/types";
import type { NodeRow, UserRow } from "../db/schema.js";
import type { NetmapState } from "../mapper/types.js";
import { peerHostinfo } from "../mapper/peer-hostinfo.js";
import { parseJson } from "./context.js";
import { effectiveExpiry, isExpired } from "./nodes.js";
import { policyViews, type ViewCache } from "./peer-views.js";

export type { ViewCache } from "./peer-views.js";

/** The user id tagged nodes report (Tailscale's "tagged-devices" pseudo-user). */
export const TAGGED_DEVICES_USER_ID = 2147455555;

/** Inputs of one snapshot. */
export interface StateInputs {
  version: number;
  domain: string;
  derpMap: DERPMap;
  dnsConfig: DNSConfig;
  users: readonly UserRow[];
  rows: readonly NodeRow[];
  now: number;
}

/** Per-backend cache of rendered nodes, keyed by id with a signature of their inputs. */
export type NodeCache = Map<NodeID, { sig: string; node: Node }>;

/** The compilation of a tailnet whose policy failed to compile: no node gets anything (fail closed). */
export const FAIL_CLOSED: CompiledPolicy = Object.freeze({ names: [], ids: [], nodes: [], baseAllowed: [] });

// `exits`: the node's approved exit routes (0.0.0.0/0, ::/0). They are in its own AllowedIPs
// (as headscale and Tailscale's control send them), so an exit node knows it was approved and
// its packet filter admits forwarded traffic; peers get them per viewer from the policy views.
function renderNode(r: NodeRow, domain: string, primary: readonly string[], now: number, exits: readonly string[] = []): Node {
  const tags = parseJson<string[]>(r.tags, []);
  const exp = effectiveExpiry(r);
  const addresses = [`${r.ipv4}/32`, `${r.ipv6}/128`];
  const n: Node = {
    ID: r.id,
    StableID: `n${r.id.toString(36)}CNTRL`,
    Name: `${r.given_name}.${domain}.`,
    User: tags.length > 0 || r.user_id == null ? TAGGED_DEVICES_USER_ID : r.user_id,
    Key: r.node_key as Node["Key"],
    Machine: r.machine_key as Node["Machine"],
    Addresses: addresses,
    AllowedIPs: [...addresses, ...primary, ...exits],
    Endpoints: parseJson<string[]>(r.endpoints, []),
    Hostinfo: peerHostinfo(parseJson<Record<string, unknown>>(r.hostinfo, {})),
    Created: new Date(r.created_at).toISOString(),
    MachineAuthorized: !!r.approved,
    Online: !!r.online,
  };
  if (r.disco_key) n.DiscoKey = r.disco_key as Node["DiscoKey"];
  if (r.home_derp > 0) {
    n.HomeDERP = r.home_derp;
    n.DERP = `127.3.3.40:${r.home_derp}`;
  }
  if (exp != null) n.KeyExpiry = new Date(exp).toISOString();
  if (isExpired(r, now)) n.Expired = true;
  if (r.ephemeral) n.Ephemeral = true;
  if (tags.length > 0) n.Tags = tags;
  if (primary.length > 0) n.PrimaryRoutes = [...primary];
  if (r.last_seen != null) n.LastSeen = new Date(r.last_seen).toISOString();
  n.ComputedName = r.given_name;
  return n;
}

// LoginName follows the one identity rule (e-mail, else `name@`), so no two users ever show
// peers the same login (apps authorize by it, e.g. Serve's Tailscale-User-Login header).
function profiles(users: readonly UserRow[], _domain: string): Map<UserID, UserProfile> {
  const m = new Map<UserID, UserProfile>();
  for (const u of users) m.set(u.id, { ID: u.id, LoginName: loginName(u), DisplayName: u.display_name ?? u.name });
  m.set(TAGGED_DEVICES_USER_ID, { ID: TAGGED_DEVICES_USER_ID, LoginName: "tagged-devices", DisplayName: "Tagged Devices" });
  return m;
}

/**
 * Builds a snapshot; reuses cached Node objects whose inputs did not change, and the
 * policy views of `views` while the compilation is unchanged. `compiled` is matched to
 * the rows by node id (`compiled.ids`); rows it does not name get no policy (deny-all).
 */
export function buildState(inputs: StateInputs, compiled: CompiledPolicy, cache: NodeCache, views: ViewCache = {}): NetmapState {
  const primaries = new Map<NodeID, readonly string[]>();
  const exitRoutes = new Map<NodeID, readonly string[]>();
  compiled.nodes.forEach((c, j) => {
    const id = compiled.ids[j];
    if (c.primaryRoutes && id !== undefined) primaries.set(id, c.primaryRoutes);
    const ex = (compiled.baseAllowed[j] ?? []).filter((a) => a === "0.0.0.0/0" || a === "::/0");
    if (ex.length > 0 && id !== undefined) exitRoutes.set(id, ex);
  });
  const nodes = new Map<NodeID, Node>();
  const seen = new Set<NodeID>();
  for (const r of inputs.rows) {
    seen.add(r.id);
    const primary = primaries.get(r.id) ?? [];
    const exits = exitRoutes.get(r.id) ?? [];
    const expired = isExpired(r, inputs.now);
    const sig = `${r.updated_at}|${r.online}|${r.last_seen}|${r.node_key}|${r.given_name}|${r.approved}|${r.key_expiry}|${r.expiry_disabled}|${r.endpoints}|${r.home_derp}|${r.disco_key}|${r.tags}|${r.user_id}|${inputs.domain}|${expired}|${primary.join(",")}|${exits.join(",")}`;
    const hit = cache.get(r.id);
    if (hit && hit.sig === sig) nodes.set(r.id, hit.node);
    else {
      const node = renderNode(r, inputs.domain, primary, inputs.now, exits);
      cache.set(r.id, { sig, node });
      nodes.set(r.id, node);
    }
  }
  for (const id of [...cache.keys()]) if (!seen.has(id)) cache.delete(id);
  const userProfiles = profiles(inputs.users, inputs.domain);
  const lookups = policyViews(compiled, nodes, views);
  return {
    version: inputs.version,
    domain: inputs.domain,
    derpMap: inputs.derpMap,
    dnsConfig: inputs.dnsConfig,
    nodes,
    userProfiles,
    policyFor(nodeId) {
      return nodes.has(nodeId) ? lookups.policyFor(nodeId) : undefined;
    },
    visiblePeersOf(nodeId) {
      return nodes.has(nodeId) ? lookups.visiblePeersOf(nodeId) : undefined;
    },
    // The backend runs every recompilation through changedNodes (policy-diff.ts), which
    // keeps unchanged packet filters and SSH rule lists as the previous objects.
    policyInterned: true,
  };
}
