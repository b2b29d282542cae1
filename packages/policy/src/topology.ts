/** The tailnet state a policy is compiled against (the corpus `topology` shape) and its indexed form. */
import { PolicyError } from "./errors.js";
import { isAdminRole, isUserRole, loginName, type UserRole } from "./identity.js";
import { formatPrefixFull, isExitRoute, parseAddr, parsePrefix, type IPRange } from "./ip.js";

/** A user of the tailnet. */
export interface TopologyUser {
  /** Numeric id (ordering of SSH principals follows it). */
  id: number;
  /** Login name ("odin"). */
  name: string;
  /** Email ("odin@example.com"); "" for a user without one (login name `name@`). */
  email: string;
  /**
   * Role (Tailscale's Owner/Admin/Member). When absent: the lowest-id user is the owner
   * unless some user is explicitly `owner`, everyone else is `admin` — what Tailscale's
   * conformance captures were taken with.
   */
  role?: UserRole;
}

/** A node of the tailnet. */
export interface TopologyNode {
  /** Host name. */
  hostname?: string;
  /** Tags; a tagged node belongs to no user. */
  tags?: string[];
  /** Tailnet IPv4 address. */
  ipv4: string;
  /** Tailnet IPv6 address. */
  ipv6: string;
  /** Owning user's name (untagged nodes). */
  user?: string;
  /** Routes the node advertises. */
  routable_ips?: string[];
  /** Routes approved for it (only routes it also advertises take effect). */
  approved_routes?: string[];
  /**
   * Registration order (lower = registered earlier). Among nodes serving the same subnet
   * route, the earliest registered is primary; without ids, topology order decides.
   */
  id?: number;
}

/** Users and nodes (node name → node). */
export interface Topology {
  /** Users. */
  users: TopologyUser[];
  /** Nodes by name. */
  nodes: Record<string, TopologyNode>;
}

/** A node with parsed addresses and derived facts. */
export interface NodeInfo {
  /** Index in {@link TopologyIndex.nodes}. */
  idx: number;
  /** Node name (the key in the topology). */
  name: string;
  /** IPv4 as integer. */
  v4: bigint;
  /** IPv6 as integer. */
  v6: bigint;
  /** IPv4 text. */
  ipv4: string;
  /** IPv6 text. */
  ipv6: string;
  /** Tags. */
  tags: string[];
  /** Whether the node is tagged. */
  tagged: boolean;
  /** Owning user, untagged nodes only. */
  user: TopologyUser | null;
  /** Approved non-exit routes. */
  subnetRoutes: IPRange[];
  /** Approved non-exit routes as written (canonical). */
  subnetRouteStrs: string[];
  /** Registration order key (id, else topology position). */
  order: number;
  /** Whether an exit route (0.0.0.0/0 or ::/0) is approved. */
  isExit: boolean;
  /** Approved exit routes as strings. */
  exitRouteStrs: string[];
}

/** The topology with indexes used by the compiler. */
export interface TopologyIndex {
  /** Nodes in topology order. */
  nodes: NodeInfo[];
  /** Users. */
  users: TopologyUser[];
  /** Address text ("100.64.0.1" or v6) → node index. */
  byAddr: Map<string, number>;
  /** user id → untagged nodes. */
  byUser: Map<number, NodeInfo[]>;
  /** tag → nodes. */
  byTag: Map<string, NodeInfo[]>;
  /** Every approved subnet route (deduplicated, first-seen order). */
  allSubnetRoutes: string[];
  /** user id → effective role ({@link userRoles}). */
  roles: Map<number, UserRole>;
}

/**
 * Each user's effective role: the given `role`, else `owner` for the lowest-id user when no
 * user is explicitly the owner, else `admin`. Throws PolicyError for an unknown role.
 */
export function userRoles(users: readonly TopologyUser[]): Map<number, UserRole> {
  for (const [i, u] of users.entries()) {
    if (u.role !== undefined && !isUserRole(u.role)) {
      throw new PolicyError("invalid-topology", `topology.users[${i}].role: ${JSON.stringify(u.role)} is not one of owner, admin, member`);
    }
  }
  const explicitOwner = users.some((u) => u.role === "owner");
  const first = [...users].sort((a, b) => a.id - b.id)[0];
  return new Map(users.map((u) => [u.id, u.role ?? (!explicitOwner && u === first ? "owner" : "admin")]));
}

/** The tailnet's owner (lowest id among users whose effective role is owner), or null. */
export function tailnetOwner(topo: Pick<TopologyIndex, "users" | "roles">): TopologyUser | null {
  return [...topo.users].sort((a, b) => a.id - b.id).find((u) => topo.roles.get(u.id) === "owner") ?? null;
}

/** Whether the user administers the tailnet (effective role owner or admin). */
export function isTailnetAdmin(topo: Pick<TopologyIndex, "roles">, u: TopologyUser): boolean {
  const r = topo.roles.get(u.id);
  return r !== undefined && isAdminRole(r);
}

/** A topology user's login name (its e-mail, else `name@`), see identity.ts. */
export function userLogin(u: TopologyUser): string {
  return loginName(u);
}

function addrKey(v6: boolean, n: bigint): string {
  return `${v6 ? 6 : 4}:${n}`;
}

/** The lookup key of an address, for {@link TopologyIndex.byAddr}. */
export function addressKey(v6: boolean, n: bigint): string {
  return addrKey(v6, n);
}

/** Validates and indexes a topology. */
export function indexTopology(topo: Topology): TopologyIndex {
  const users = topo.users ?? [];
  const byName = new Map(users.map((u) => [u.name, u]));
  const nodes: NodeInfo[] = [];
  const byAddr = new Map<string, number>();
  const byUser = new Map<number, NodeInfo[]>();
  const byTag = new Map<string, NodeInfo[]>();
  const seenRoutes = new Set<string>();
  const allSubnetRoutes: string[] = [];
  for (const [name, n] of Object.entries(topo.nodes ?? {})) {
    const a4 = parseAddr(n.ipv4);
    const a6 = parseAddr(n.ipv6);
    if (!a4 || a4.v6 || !a6 || !a6.v6) throw new PolicyError("invalid-topology", `topology.nodes[${JSON.stringify(name)}]: invalid ipv4/ipv6`);
    const tags = n.tags ?? [];
    const tagged = tags.length > 0;
    const user = tagged ? null : (byName.get(n.user ?? "") ?? (n.user === undefined ? (users[0] ?? null) : null));
    const subnetRoutes: IPRange[] = [];
    const subnetRouteStrs: string[] = [];
    const exitRouteStrs: string[] = [];
    const advertised = new Set((n.routable_ips ?? []).map((r) => {
      const p = parsePrefix(r);
      return p ? formatPrefixFull(p) : r;
    }));
    for (const r of n.approved_routes ?? []) {
      const p = parsePrefix(r);
      if (!p) throw new PolicyError("invalid-topology", `topology.nodes[${JSON.stringify(name)}]: invalid route ${JSON.stringify(r)}`);
      if (!advertised.has(formatPrefixFull(p))) continue;
      if (isExitRoute(r)) {
        exitRouteStrs.push(p.v6 ? "::/0" : "0.0.0.0/0");
        continue;
      }
      const range = { v6: p.v6, lo: p.lo, hi: p.hi };
      subnetRoutes.push(range);
      const s = formatPrefixFull(range);
      subnetRouteStrs.push(s);
      if (!seenRoutes.has(s)) {
        seenRoutes.add(s);
        allSubnetRoutes.push(s);
      }
    }
    const info: NodeInfo = {
      idx: nodes.length,
      name,
      v4: a4.n,
      v6: a6.n,
      ipv4: n.ipv4,
      ipv6: n.ipv6,
      tags,
      tagged,
      user,
      subnetRoutes,
      subnetRouteStrs,
      order: n.id ?? nodes.length,
      isExit: exitRouteStrs.length > 0,
      exitRouteStrs,
    };
    nodes.push(info);
    byAddr.set(addrKey(false, a4.n), info.idx);
    byAddr.set(addrKey(true, a6.n), info.idx);
    if (user) {
      const l = byUser.get(user.id) ?? [];
      l.push(info);
      byUser.set(user.id, l);
    }
    for (const t of tags) {
      const l = byTag.get(t) ?? [];
      l.push(info);
      byTag.set(t, l);
    }
  }
  return { nodes, users, byAddr, byUser, byTag, allSubnetRoutes, roles: userRoles(users) };
}
