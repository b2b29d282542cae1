/**
 * Builds the mapper's in-memory {@link NetmapState} from database rows and the compiled
 * policy. Pure functions plus a small cache so unchanged nodes stay the same objects.
 */
import { compilePolicy, type NodeCompiled, type Policy } from "@lattice/policy";
import type { DERPMap, DNSConfig, Node, NodeID, SSHRule, UserID, UserProfile } from "@lattice/types";
import type { Selectable } from "kysely";
import type { UsersTable } from "../db/schema.js";
import type { NetmapState, NodePolicyView } from "../nodeapi/backend.js";
import { parseJson } from "./context.js";
import { effectiveExpiry, isExpired, type NodeRow } from "./nodes.js";
import { topologyFrom } from "./topology.js";

/** The user id tagged nodes report (Tailscale's "tagged-devices" pseudo-user). */
export const TAGGED_DEVICES_USER_ID = 2147455555;

/** Inputs of one snapshot. */
export interface StateInputs {
  version: number;
  domain: string;
  derpMap: DERPMap;
  dnsConfig: DNSConfig;
  users: Selectable<UsersTable>[];
  rows: NodeRow[];
  policy: Policy;
  serverUrl: string;
  now: number;
}

/** Per-backend cache of rendered nodes, keyed by id with a signature of their inputs. */
export type NodeCache = Map<NodeID, { sig: string; node: Node }>;

/** Compiles the policy for the rows (approved nodes only). Throws PolicyError if the policy no longer compiles. */
export function compileFor(inputs: Pick<StateInputs, "users" | "rows" | "policy" | "serverUrl">): Record<string, NodeCompiled> {
  return compilePolicy(inputs.policy, topologyFrom(inputs.users, inputs.rows), { serverUrl: inputs.serverUrl });
}

function renderNode(r: NodeRow, domain: string, primary: readonly string[], now: number): Node {
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
    AllowedIPs: [...addresses, ...primary],
    Endpoints: parseJson<string[]>(r.endpoints, []),
    Hostinfo: parseJson<Record<string, unknown>>(r.hostinfo, {}) as Node["Hostinfo"],
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
  if (tags.length > 0) n.Tags = tags;
  if (primary.length > 0) n.PrimaryRoutes = [...primary];
  if (r.last_seen != null) n.LastSeen = new Date(r.last_seen).toISOString();
  n.ComputedName = r.given_name;
  return n;
}

function profiles(users: Selectable<UsersTable>[], domain: string): Map<UserID, UserProfile> {
  const m = new Map<UserID, UserProfile>();
  for (const u of users) m.set(u.id, { ID: u.id, LoginName: u.email ?? `${u.name}@${domain}`, DisplayName: u.display_name ?? u.name });
  m.set(TAGGED_DEVICES_USER_ID, { ID: TAGGED_DEVICES_USER_ID, LoginName: "tagged-devices", DisplayName: "Tagged Devices" });
  return m;
}

/** Builds a snapshot; reuses cached Node objects whose inputs did not change. */
export function buildState(inputs: StateInputs, compiled: Record<string, NodeCompiled>, cache: NodeCache): NetmapState {
  const nodes = new Map<NodeID, Node>();
  const nameToId = new Map<string, NodeID>();
  const seen = new Set<NodeID>();
  for (const r of inputs.rows) {
    nameToId.set(r.given_name, r.id);
    seen.add(r.id);
    const primary = compiled[r.given_name]?.primaryRoutes ?? [];
    const expired = isExpired(r, inputs.now);
    const sig = `${r.updated_at}|${r.online}|${r.last_seen}|${r.node_key}|${r.given_name}|${r.approved}|${r.key_expiry}|${r.expiry_disabled}|${r.endpoints}|${r.home_derp}|${r.disco_key}|${r.tags}|${r.user_id}|${inputs.domain}|${expired}|${primary.join(",")}`;
    const hit = cache.get(r.id);
    if (hit && hit.sig === sig) nodes.set(r.id, hit.node);
    else {
      const node = renderNode(r, inputs.domain, primary, inputs.now);
      cache.set(r.id, { sig, node });
      nodes.set(r.id, node);
    }
  }
  for (const id of [...cache.keys()]) if (!seen.has(id)) cache.delete(id);
  const views = new Map<NodeID, NodePolicyView>();
  const userProfiles = profiles(inputs.users, inputs.domain);
  return {
    version: inputs.version,
    domain: inputs.domain,
    derpMap: inputs.derpMap,
    dnsConfig: inputs.dnsConfig,
    nodes,
    userProfiles,
    policyFor(nodeId: NodeID): NodePolicyView | undefined {
      const cached = views.get(nodeId);
      if (cached) return cached;
      const node = nodes.get(nodeId);
      if (!node) return undefined;
      const name = node.ComputedName ?? "";
      const c = compiled[name];
      if (!c) return undefined;
      const peers = new Map<NodeID, readonly string[]>();
      const compiledPeers = c.peers;
      for (const peerName in compiledPeers) {
        const id = nameToId.get(peerName);
        if (id === undefined) continue;
        const allowed = compiledPeers[peerName]!;
        const peer = nodes.get(id);
        // Share the peer's own AllowedIPs array when equal, so the mapper reuses the peer object.
        peers.set(id, peer && sameList(peer.AllowedIPs, allowed) ? peer.AllowedIPs : allowed);
      }
      const view: NodePolicyView = {
        packetFilter: c.packetFilter,
        sshPolicy: c.ssh && c.ssh.length > 0 ? { rules: c.ssh as SSHRule[] } : null,
        peers,
      };
      if (c.capMap) view.capMap = Object.fromEntries(Object.entries(c.capMap).map(([k, v]) => [k, v ?? []]));
      views.set(nodeId, view);
      return view;
    },
  };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
