/**
 * Indexes compiled rules against the topology once: which nodes each rule's sources and
 * destinations cover, and which destination entries land on which node. Everything per
 * node (filters, peers, route visibility) then reads the index instead of rescanning
 * every rule for every node.
 */
import type { FilterRule, NetPortRange } from "@lattice/types";
import { reduceRule, type CompiledRule } from "./filter.js";
import { rangesOverlap, type IPRange } from "./ip.js";
import { addressKey, type NodeInfo, type TopologyIndex } from "./topology.js";

/** A node set; null means every node. */
export type NodeSet = Set<number> | null;

/** One rule's coverage (what {@link RuleIndex} derives per rule), reusable across compiles while the rule object and the nodes it covers are unchanged. */
export interface RuleCover {
  /** Source coverage, and the node count it was computed for. */
  src: NodeSet;
  /** Node count at computation (a null `src` means "every node" only for that count). */
  count: number;
  /** Destination coverage. */
  dst: NodeSet;
  /** Entry indexes landing on every node. */
  stars: number[];
  /** node index → entry indexes landing on it. */
  hits: Map<number, number[]>;
}

/** Rule → node coverage, computed once per compile. */
export class RuleIndex {
  /** Source coverage per rule (null = all nodes). */
  readonly srcNodes: NodeSet[];
  /** Destination coverage per rule (null = all nodes). */
  readonly dstNodes: NodeSet[];
  /** Per node: rule index → indexes of the DstPorts entries landing on it. */
  private readonly perNode: Map<number, number[]>[];
  /** Per rule: entry indexes that land on every node ("*"). */
  private readonly starEntries: number[][];
  private readonly routers: NodeInfo[];
  private readonly exits: NodeInfo[];
  private exitViewers_: NodeSet | undefined;
  private readonly wideCache = new Map<string, number[]>();
  private readonly routeCache = new Map<string, NodeSet>();
  private readonly viewerSets = new Map<string, NodeSet>();

  /**
   * Builds the index for `rules` over `topo`. `covers` (optional) carries rule coverage
   * from earlier compiles: the caller guarantees that a rule object found there covers the
   * same nodes in this topology (incremental compile); new coverage is added to it.
   */
  constructor(
    private readonly topo: TopologyIndex,
    readonly rules: readonly CompiledRule[],
    covers?: WeakMap<CompiledRule, RuleCover>,
  ) {
    this.routers = topo.nodes.filter((n) => n.subnetRoutes.length > 0);
    this.exits = topo.nodes.filter((n) => n.isExit);
    this.perNode = topo.nodes.map(() => new Map());
    this.starEntries = [];
    this.srcNodes = [];
    this.dstNodes = [];
    const count = topo.nodes.length;
    rules.forEach((r, ri) => {
      let c = covers?.get(r);
      if (c && c.src === null && c.count !== count) c = { ...c, src: this.computeSrc(r), count };
      if (!c) c = { src: this.computeSrc(r), count, ...this.computeDst(r) };
      covers?.set(r, c);
      this.srcNodes.push(c.src);
      this.dstNodes.push(c.dst);
      this.starEntries.push(c.stars);
      for (const [i, l] of c.hits) this.perNode[i].set(ri, l);
    });
  }

  /** Nodes whose address lies in the range, plus routers whose approved routes overlap it. */
  private rangeNodes(r: IPRange): number[] {
    if (r.lo === r.hi) {
      const i = this.topo.byAddr.get(addressKey(r.v6, r.lo));
      const out = i === undefined ? [] : [i];
      for (const n of this.routers) if (n.idx !== i && n.subnetRoutes.some((s) => rangesOverlap(s, r))) out.push(n.idx);
      return out;
    }
    const key = `${r.v6 ? 6 : 4}:${r.lo}:${r.hi}`;
    let hit = this.wideCache.get(key);
    if (!hit) {
      const set = new Set<number>();
      for (const n of this.topo.nodes) {
        const a = r.v6 ? n.v6 : n.v4;
        if (r.lo <= a && a <= r.hi) set.add(n.idx);
      }
      for (const n of this.routers) if (n.subnetRoutes.some((s) => rangesOverlap(s, r))) set.add(n.idx);
      hit = [...set];
      this.wideCache.set(key, hit);
    }
    return hit;
  }

  private computeSrc(r: CompiledRule): NodeSet {
    if (r.srcAll || r.src.nodes.size === this.topo.nodes.length) return null;
    const set = new Set(r.src.nodes);
    for (const n of this.routers) {
      if (set.has(n.idx)) continue;
      if (n.subnetRoutes.some((s) => r.src.ranges.some((x) => rangesOverlap(s, x)))) set.add(n.idx);
    }
    return set;
  }

  private computeDst(r: CompiledRule): { dst: NodeSet; stars: number[]; hits: Map<number, number[]> } {
    const stars: number[] = [];
    const hits = new Map<number, number[]>();
    let all = false;
    const set = new Set<number>();
    r.dsts.forEach((d, ei) => {
      if (!d.range) {
        stars.push(ei);
        all = true;
        return;
      }
      const nodes = d.public && this.exits.length > 0 ? [...new Set([...this.rangeNodes(d.range), ...this.exits.map((n) => n.idx)])] : this.rangeNodes(d.range);
      for (const i of nodes) {
        set.add(i);
        if (r.peerOnly || (r.onlyNodes && !r.onlyNodes.has(i))) continue;
        const l = hits.get(i);
        if (l) l.push(ei);
        else hits.set(i, [ei]);
      }
    });
    for (const c of r.caps) for (const d of c.dsts) for (const i of this.rangeNodes(d)) set.add(i);
    if (r.internet) for (const n of this.topo.nodes) if (n.isExit) set.add(n.idx);
    if (r.onlyNodes) {
      if (all) return { dst: new Set(r.onlyNodes), stars, hits };
      for (const i of set) if (!r.onlyNodes.has(i)) set.delete(i);
      return { dst: set, stars, hits };
    }
    return { dst: all ? null : set, stars, hits };
  }

  /**
   * Nodes that may use approved exit nodes (receive their 0.0.0.0/0 and ::/0): sources of
   * rules whose destinations are "*" or autogroup:internet (or an IP set built from it).
   * null = every node. Reaching an exit node's own address does not make it an exit.
   */
  exitViewers(): NodeSet {
    if (this.exitViewers_ !== undefined) return this.exitViewers_;
    const set = new Set<number>();
    let all = false;
    this.rules.forEach((r, ri) => {
      if (r.caps.length > 0 || !(r.internet || r.dsts.some((d) => d.range === null))) return;
      const s = this.srcNodes[ri];
      if (s === null) all = true;
      else for (const i of s) set.add(i);
    });
    this.exitViewers_ = all ? null : set;
    return this.exitViewers_;
  }

  /** Whether rule `ri` covers node `i` as a source. */
  isSrc(ri: number, i: number): boolean {
    const s = this.srcNodes[ri];
    return s === null || s.has(i);
  }

  /** Whether rule `ri` covers node `i` as a destination. */
  isDst(ri: number, i: number): boolean {
    const s = this.dstNodes[ri];
    return s === null || s.has(i);
  }

  /** The node's share of the indexed rules, reduced to what lands on it (unmerged). */
  filterRules(n: NodeInfo): FilterRule[] {
    const out: FilterRule[] = [];
    const mine = this.perNode[n.idx];
    this.rules.forEach((r, ri) => {
      if (r.caps.length > 0) {
        if (this.isDst(ri, n.idx)) {
          const x = reduceRule(r, n);
          if (x) out.push(x);
        }
        return;
      }
      if (r.peerOnly || (r.onlyNodes && !r.onlyNodes.has(n.idx))) return;
      const stars = this.starEntries[ri];
      const hits = mine.get(ri);
      if (stars.length === 0 && !hits) return;
      const idx = hits ? [...new Set([...stars, ...hits])].sort((a, b) => a - b) : stars;
      const DstPorts: NetPortRange[] = idx.map((ei) => r.dsts[ei].out);
      const rule: FilterRule = { SrcIPs: r.srcIPs, DstPorts };
      if (r.proto) rule.IPProto = r.proto;
      out.push(rule);
    });
    return out;
  }

  /** Whether `viewer` may use subnet `route` of a peer: it can reach the route or the route can reach it. */
  canAccessRoute(viewer: NodeInfo, routeKey: string, route: IPRange): boolean {
    let viewers = this.routeCache.get(routeKey);
    if (viewers === undefined) {
      const dst: number[] = [];
      const src: number[] = [];
      this.rules.forEach((r, ri) => {
        if (r.dsts.some((d) => !d.range || rangesOverlap(d.range, route)) || r.caps.some((x) => x.dsts.some((d) => rangesOverlap(d, route)))) {
          dst.push(ri);
        }
        if (r.srcAll || r.src.ranges.some((s) => rangesOverlap(s, route))) src.push(ri);
      });
      // Routes touched by the same rules share one viewer set.
      const sig = `${dst.join(",")}|${src.join(",")}`;
      viewers = this.viewerSets.get(sig);
      if (viewers === undefined) {
        const set = new Set<number>();
        let all = false;
        for (const ri of dst) {
          const s = this.srcNodes[ri];
          if (s === null) all = true;
          else for (const i of s) set.add(i);
        }
        for (const ri of src) {
          const d = this.dstNodes[ri];
          if (d === null) all = true;
          else for (const i of d) set.add(i);
        }
        viewers = all ? null : set;
        this.viewerSets.set(sig, viewers);
      }
      this.routeCache.set(routeKey, viewers);
    }
    return viewers === null || viewers.has(viewer.idx);
  }
}
