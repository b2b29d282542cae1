/** Resolution of aliases to node sets and address sets against a topology. */
import { IPSet, TAILNET_RANGES, ALL_RANGES, type IPRange } from "./ip.js";
import type { Alias, Policy } from "./model.js";
import { userMatchesToken } from "./identity.js";
import { addressKey, isTailnetAdmin, tailnetOwner, type NodeInfo, type TopologyIndex, type TopologyUser } from "./topology.js";

/** What an alias (or a list of them) stands for. */
export interface Resolved {
  /** Indexes of nodes whose tailnet address is in the set. */
  nodes: Set<number>;
  /** Address ranges (node addresses and literal prefixes). */
  ranges: IPRange[];
}

/** Resolves aliases once each (memoized by text) for one compile. */
export class Resolver {
  private readonly cache = new Map<string, Resolved>();
  private readonly memos = new Map<string, unknown>();

  /** Memoizes a value derived from the policy and topology for this compile (results are shared: never mutate them). */
  memo<T>(key: string, compute: () => T): T {
    if (this.memos.has(key)) return this.memos.get(key) as T;
    const v = compute();
    this.memos.set(key, v);
    return v;
  }

  /** Binds a policy to a topology. */
  constructor(
    readonly policy: Policy,
    readonly topo: TopologyIndex,
  ) {}

  /**
   * Finds the user a policy token names: the one whose login name (e-mail, else `name@`)
   * equals the token case-insensitively ({@link userMatchesToken}, the one identity rule).
   */
  findUser(token: string): TopologyUser | undefined {
    return this.topo.users.find((u) => userMatchesToken(token, u));
  }

  /** Resolves one alias. autogroup:self and autogroup:internet resolve to nothing here. */
  resolve(a: Alias): Resolved {
    const hit = this.cache.get(a.text);
    if (hit) return hit;
    const r = this.compute(a);
    this.cache.set(a.text, r);
    return r;
  }

  /** Resolves a list of aliases into one union. */
  resolveAll(list: readonly Alias[]): Resolved {
    const nodes = new Set<number>();
    const ranges: IPRange[] = [];
    for (const a of list) {
      const r = this.resolve(a);
      for (const n of r.nodes) nodes.add(n);
      ranges.push(...r.ranges);
    }
    return { nodes, ranges };
  }

  private fromNodes(list: Iterable<NodeInfo>): Resolved {
    const nodes = new Set<number>();
    const ranges: IPRange[] = [];
    for (const n of list) {
      nodes.add(n.idx);
      ranges.push({ v6: false, lo: n.v4, hi: n.v4 }, { v6: true, lo: n.v6, hi: n.v6 });
    }
    return { nodes, ranges };
  }

  private fromRanges(ranges: IPRange[]): Resolved {
    const nodes = new Set<number>();
    for (const r of ranges) {
      if (r.lo === r.hi) {
        const i = this.topo.byAddr.get(addressKey(r.v6, r.lo));
        if (i !== undefined) nodes.add(i);
        continue;
      }
      for (const n of this.topo.nodes) {
        const a = r.v6 ? n.v6 : n.v4;
        if (r.lo <= a && a <= r.hi) nodes.add(n.idx);
      }
    }
    return { nodes, ranges };
  }

  private userNodes(u: TopologyUser | undefined): NodeInfo[] {
    return u ? (this.topo.byUser.get(u.id) ?? []) : [];
  }

  private compute(a: Alias): Resolved {
    const topo = this.topo;
    switch (a.kind) {
      case "wildcard":
        return { nodes: new Set(topo.nodes.map((n) => n.idx)), ranges: [...TAILNET_RANGES] };
      case "user":
        return this.fromNodes(this.userNodes(this.findUser(a.name)));
      case "userDomain": {
        const d = a.domain.toLowerCase();
        const users = topo.users.filter((u) => u.email !== "" && u.email.toLowerCase().endsWith("@" + d));
        return this.fromNodes(users.flatMap((u) => this.userNodes(u)));
      }
      case "group": {
        const members = this.policy.groups.get(a.name) ?? [];
        const seen = new Set<number>();
        const list: NodeInfo[] = [];
        for (const m of members) {
          const u = this.findUser(m);
          if (!u || seen.has(u.id)) continue;
          seen.add(u.id);
          list.push(...this.userNodes(u));
        }
        return this.fromNodes(list);
      }
      case "tag":
        return this.fromNodes(topo.byTag.get(a.name) ?? []);
      case "host": {
        const r = this.policy.hosts.get(a.name);
        return r ? this.fromRanges([r]) : { nodes: new Set(), ranges: [] };
      }
      case "prefix":
        return this.fromRanges([a.range]);
      case "ipset": {
        const s = this.policy.ipsets.get(a.name);
        return s ? this.fromRanges([...s.ranges]) : { nodes: new Set(), ranges: [] };
      }
      case "autogroup":
        switch (a.name) {
          case "member":
            return this.fromNodes(topo.nodes.filter((n) => !n.tagged));
          case "tagged":
            return this.fromNodes(topo.nodes.filter((n) => n.tagged));
          case "admin":
            // Devices of users whose role is admin or owner (Tailscale: the owner administers too).
            return this.fromNodes(topo.nodes.filter((n) => !n.tagged && n.user && isTailnetAdmin(topo, n.user)));
          case "owner": {
            const owner = tailnetOwner(topo);
            return this.fromNodes(owner ? (topo.byUser.get(owner.id) ?? []) : []);
          }
          case "danger-all":
            return { nodes: new Set(topo.nodes.map((n) => n.idx)), ranges: [...ALL_RANGES] };
          default:
            return { nodes: new Set(), ranges: [] };
        }
    }
  }
}

/** Strings of a resolved set as Tailscale prints them in SrcIPs. */
export function resolvedStrings(r: Resolved): string[] {
  return new IPSet(r.ranges).strings();
}
