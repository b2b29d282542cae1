/**
 * Devices for the identities a policy's `tests` / `sshTests` name but that have none yet
 * (issue 7 B1). Tailscale evaluates tests against the policy's meaning for an identity,
 * devices or not: a test for a user who has not joined yet, or towards a tag no node
 * carries yet, must fail when the policy says otherwise (the state while migrating).
 * Lattice evaluates the compiled filters, so it adds one stand-in device per such
 * identity (unused addresses at the top of the tailnet ranges) and runs the tests on that
 * topology; the stand-ins appear nowhere else.
 */
import { parseAlias } from "./alias.js";
import { formatAddr, parseAddr } from "./ip.js";
import type { Alias, Policy } from "./model.js";
import type { Resolver } from "./resolve.js";
import { addressKey, type Topology, type TopologyNode, type TopologyUser } from "./topology.js";

const ZERO = { line: 0, column: 0 };

function aliasOf(text: string): Alias | null {
  try {
    return parseAlias(text, ZERO);
  } catch {
    return null;
  }
}

/** The alias part of a test destination "alias:port" ("[v6]:port" included). */
function destAlias(dst: string): Alias | null {
  const i = dst.lastIndexOf(":");
  return i > 0 ? aliasOf(dst.slice(0, i)) : null;
}

/**
 * `topology` plus a stand-in device for every user (email) or tag the tests name without
 * devices; null when every named identity has a device (nothing to add).
 */
export function withTestDevices(policy: Policy, topology: Topology, resolver: Resolver): Topology | null {
  const named: Alias[] = [];
  for (const t of policy.tests) {
    for (const a of [aliasOf(t.src), ...[...t.accept, ...t.deny].map(destAlias)]) if (a) named.push(a);
  }
  for (const t of policy.sshTests) for (const a of [aliasOf(t.src), ...t.dst.map(aliasOf)]) if (a) named.push(a);
  const users: TopologyUser[] = [...topology.users];
  const nodes: Record<string, TopologyNode> = {};
  const used = resolver.topo.byAddr;
  let v4 = parseAddr("100.127.255.254")!.n;
  let v6 = parseAddr("fd7a:115c:a1e0:ffff::1")!.n;
  const seen = new Set<string>();
  const add = (key: string, node: Omit<TopologyNode, "ipv4" | "ipv6">): void => {
    while (used.has(addressKey(false, v4))) v4--;
    while (used.has(addressKey(true, v6))) v6++;
    nodes[`\u0000test-device ${key}`] = { ...node, ipv4: formatAddr(false, v4--), ipv6: formatAddr(true, v6++) };
  };
  let nextId = Math.max(0, ...users.map((u) => u.id)) + 1;
  for (const a of named) {
    if (seen.has(a.text)) continue;
    seen.add(a.text);
    if (a.kind === "tag") {
      if (policy.tagOwners.has(a.name) && (resolver.topo.byTag.get(a.name) ?? []).length === 0) add(a.text, { tags: [a.name] });
    } else if (a.kind === "user") {
      let u = resolver.findUser(a.name);
      if (!u) {
        // A user who has not joined yet: only by email (a bare name names nobody).
        if (!/^[^@\s]+@[^@\s]+$/.test(a.name)) continue;
        u = { id: nextId++, name: a.name, email: a.name };
        users.push(u);
      } else if ((resolver.topo.byUser.get(u.id) ?? []).length > 0) continue;
      add(a.text, { tags: [], user: u.name });
    }
  }
  if (Object.keys(nodes).length === 0) return null;
  return { users, nodes: { ...topology.nodes, ...nodes } };
}
