/**
 * autoApprovers: routes a node advertises that the policy approves without an admin.
 * Approval is an event, not a view (Tailscale kb/1337 autoApprovers): the control server
 * approves when a node advertises a route, and for still-pending routes when the policy
 * changes, and stores the result; the compiler only reads the topology's approved routes.
 * These functions give the server (and test harnesses feeding captured state) that step.
 */
import { parsePrefix, rangeContains } from "./ip.js";
import { userMatchesToken } from "./identity.js";
import type { Alias, Policy } from "./model.js";
import type { Topology, TopologyNode, TopologyUser } from "./topology.js";

function approverMatches(a: Alias, node: TopologyNode, user: TopologyUser | undefined, policy: Policy): boolean {
  const tags = node.tags ?? [];
  const matchesUser = (token: string): boolean => {
    if (!user || tags.length > 0) return false;
    return userMatchesToken(token, user);
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

/**
 * The routes `node` advertises, not yet approved, that the policy's autoApprovers approve
 * (as written in `routable_ips`); `users` resolves the node's owner.
 */
export function autoApprovedRoutes(policy: Policy, node: TopologyNode, users: readonly TopologyUser[]): string[] {
  if (policy.autoApproverRoutes.size === 0 && policy.autoApproverExit.length === 0) return [];
  const user = node.user !== undefined ? users.find((u) => u.name === node.user) : undefined;
  const rules = [...policy.autoApproverRoutes].map(([p, list]) => ({ range: parsePrefix(p)!, list }));
  const approved = node.approved_routes ?? [];
  const out: string[] = [];
  for (const r of node.routable_ips ?? []) {
    if (approved.includes(r) || out.includes(r)) continue;
    const rr = parsePrefix(r);
    if (!rr) continue;
    const ok =
      rr.bits === 0
        ? policy.autoApproverExit.some((a) => approverMatches(a, node, user, policy))
        : rules.some((x) => x.range.bits > 0 && x.range.v6 === rr.v6 && rangeContains(x.range, rr) && x.list.some((a) => approverMatches(a, node, user, policy)));
    if (ok) out.push(r);
  }
  return out;
}

/** The topology as it is once the server has auto-approved every pending route the policy approves. */
export function applyAutoApprovers(policy: Policy, topo: Topology): Topology {
  if (policy.autoApproverRoutes.size === 0 && policy.autoApproverExit.length === 0) return topo;
  const nodes: Topology["nodes"] = {};
  for (const [name, n] of Object.entries(topo.nodes ?? {})) {
    nodes[name] = { ...n, approved_routes: [...(n.approved_routes ?? []), ...autoApprovedRoutes(policy, n, topo.users ?? [])] };
  }
  return { ...topo, nodes };
}
