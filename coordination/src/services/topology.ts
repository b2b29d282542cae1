/** The policy compiler's view of the tailnet (users + approved nodes), built from the database. */
import { loginName, type Topology } from "@lattice/policy";
import type { NodeRow, UserRow } from "../db/schema.js";
import type { ServiceContext } from "./context.js";
import { parseJson } from "./context.js";
import { roleOf } from "./users.js";

/**
 * Builds a compiler topology from rows (approved nodes only): keys are the MagicDNS names
 * (unique), each node carries its row id as `id`, which is how the server maps compiled
 * output back to nodes (never by name).
 */
export function topologyFrom(users: readonly UserRow[], nodes: readonly NodeRow[]): Topology {
  const byId = new Map(users.map((u) => [u.id, u]));
  const out: Topology = {
    users: users.map((u) => ({ id: u.id, name: u.name, email: loginName(u), role: roleOf(u) })),
    nodes: {},
  };
  for (const n of nodes) {
    if (!n.approved) continue;
    const tags = parseJson<string[]>(n.tags, []);
    const owner = n.user_id != null ? byId.get(n.user_id) : undefined;
    const hostinfo = parseJson<{ RoutableIPs?: unknown[] }>(n.hostinfo, {}) ?? {};
    out.nodes[n.given_name] = {
      id: n.id,
      hostname: n.hostname,
      ipv4: n.ipv4,
      ipv6: n.ipv6,
      tags,
      ...(tags.length === 0 && owner ? { user: owner.name } : {}),
      // Hostinfo is the node's own input: only strings reach the compiler.
      routable_ips: Array.isArray(hostinfo.RoutableIPs) ? hostinfo.RoutableIPs.filter((r): r is string => typeof r === "string") : [],
      approved_routes: parseJson<string[]>(n.approved_routes, []),
    };
  }
  return out;
}

/** Reads users and nodes and builds the topology. */
export async function loadTopology(ctx: ServiceContext): Promise<Topology> {
  const [users, nodes] = await Promise.all([
    ctx.db.kysely.selectFrom("users").selectAll().orderBy("id").execute(),
    ctx.db.kysely.selectFrom("nodes").selectAll().orderBy("id").execute(),
  ]);
  return topologyFrom(users, nodes);
}
