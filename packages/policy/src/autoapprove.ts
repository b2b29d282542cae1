/** autoApprovers: routes a node advertises that the policy approves without an admin. */
import { parsePrefix, rangeContains } from "./ip.js";
import type { Alias, Policy } from "./model.js";
import type { Topology, TopologyNode, TopologyUser } from "./topology.js";

function approverMatches(a: Alias, node: TopologyNode, user: TopologyUser | undefined, policy: Policy): boolean {
  const tags = node.tags ?? [];
  const matchesUser = (token: string): boolean => {
    if (!user || tags.length > 0) return false;
    const t = token.endsWith("@") ? token.slice(0, -1) : token;
    return user.email === t || user.name === t;
  };
  switch (a.kind) {
    case "tag":
      return tags.includes(a.name);
    case "user":
      return matchesUser(a.name);
    case "group":
      return (policy.groups.get(a.name) ?? []).some(matchesUser);
    case "autogroup":
      return a.name === "tagged" ? tags.length > 0 : a.name === "member" ? tags.length === 0 : false;
    default:
      return false;
  }
}

/** The topology with each node's approved routes extended by the policy's autoApprovers. */
export function applyAutoApprovers(policy: Policy, topo: Topology): Topology {
  if (policy.autoApproverRoutes.size === 0 && policy.autoApproverExit.length === 0) return topo;
  const users = new Map((topo.users ?? []).map((u) => [u.name, u]));
  const rules = [...policy.autoApproverRoutes].map(([p, list]) => ({ range: parsePrefix(p)!, list }));
  const nodes: Topology["nodes"] = {};
  for (const [name, n] of Object.entries(topo.nodes ?? {})) {
    const user = n.user !== undefined ? users.get(n.user) : undefined;
    const approved = [...(n.approved_routes ?? [])];
    for (const r of n.routable_ips ?? []) {
      if (approved.includes(r)) continue;
      const rr = parsePrefix(r);
      if (!rr) continue;
      const ok =
        rr.bits === 0
          ? policy.autoApproverExit.some((a) => approverMatches(a, n, user, policy))
          : rules.some((x) => x.range.bits > 0 && x.range.v6 === rr.v6 && rangeContains(x.range, rr) && x.list.some((a) => approverMatches(a, n, user, policy)));
      if (ok) approved.push(r);
    }
    nodes[name] = { ...n, approved_routes: approved };
  }
  return { ...topo, nodes };
}
