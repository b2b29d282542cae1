/** Peer visibility and each peer's AllowedIPs as a node sees them. */
import type { CompiledRule } from "./filter.js";
import { rangesOverlap } from "./ip.js";
import type { RuleIndex } from "./ruleindex.js";
import type { NodeInfo, TopologyIndex } from "./topology.js";

/**
 * node index → sorted indexes of visible peers (either direction of any rule). Nodes with
 * the same rule memberships share one array.
 */
export function computePeers(topo: TopologyIndex, index: RuleIndex): number[][] {
  const n = topo.nodes.length;
  const all = topo.nodes.map((x) => x.idx);
  const asSrc: number[][] = Array.from({ length: n }, () => []);
  const asDst: number[][] = Array.from({ length: n }, () => []);
  index.rules.forEach((_, ri) => {
    const s = index.srcNodes[ri];
    const d = index.dstNodes[ri];
    for (const i of s ?? all) asSrc[i].push(ri);
    for (const i of d ?? all) asDst[i].push(ri);
  });
  const bySig = new Map<string, number[]>();
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    const sig = `${asSrc[i].join(",")}|${asDst[i].join(",")}`;
    let list = bySig.get(sig);
    if (!list) {
      const set = new Set<number>();
      let everyone = false;
      for (const ri of asSrc[i]) {
        const d = index.dstNodes[ri];
        if (d === null) everyone = true;
        else for (const j of d) set.add(j);
      }
      for (const ri of asDst[i]) {
        const s = index.srcNodes[ri];
        if (s === null) everyone = true;
        else for (const j of s) set.add(j);
      }
      list = everyone ? all : [...set].sort((a, b) => a - b);
      bySig.set(sig, list);
    }
    out.push(list);
  }
  return out;
}

/** Computes the AllowedIPs a viewer gets for each peer. */
export class AllowedIPs {
  private readonly base_ = new Map<number, readonly string[]>();
  private special_: number[] | undefined;
  private readonly masked = new Map<number, Map<number, readonly string[]>>();
  private readonly steerCache = new Map<number, Map<string, number>>();
  private readonly viaRules: CompiledRule[];
  private readonly plainRules: CompiledRule[];

  /** Binds the topology, the rule index, the elected primaries and the disable-ipv4 nodes. */
  constructor(
    private readonly topo: TopologyIndex,
    private readonly index: RuleIndex,
    private readonly primaries: Map<number, string[]>,
    private readonly noV4: Set<number>,
    private readonly srcMatches: (r: CompiledRule, n: NodeInfo) => boolean,
  ) {
    this.viaRules = index.rules.filter((r) => r.onlyNodes);
    this.plainRules = this.viaRules.length > 0 ? index.rules.filter((r) => !r.onlyNodes) : [];
  }

  /** Via grants steer a source's traffic for a subnet to the earliest registered via router. */
  private steering(viewer: NodeInfo): Map<string, number> {
    let m = this.steerCache.get(viewer.idx);
    if (m) return m;
    m = new Map();
    for (const rule of this.viaRules) {
      if (!this.srcMatches(rule, viewer)) continue;
      const routers = [...rule.onlyNodes!].map((i) => this.topo.nodes[i]).sort((a, b) => a.order - b.order || a.idx - b.idx);
      for (const d of rule.dsts) {
        if (!d.range) continue;
        for (const router of routers) {
          const served = router.subnetRoutes.findIndex((x) => rangesOverlap(x, d.range!));
          if (served < 0) continue;
          const r = router.subnetRouteStrs[served];
          const range = router.subnetRoutes[served];
          // Plain (non-via) access to the same subnet keeps the route on its primary.
          const direct = this.plainRules.some((x) => this.srcMatches(x, viewer) && x.dsts.some((e) => e.range && rangesOverlap(e.range, range)));
          if (!direct && !m.has(r)) m.set(r, router.idx);
          break;
        }
      }
    }
    this.steerCache.set(viewer.idx, m);
    return m;
  }

  /** Peer `j`'s AllowedIPs when nothing viewer-specific applies (frozen, shared). */
  base(j: number): readonly string[] {
    let b = this.base_.get(j);
    if (!b) {
      const p = this.topo.nodes[j];
      b = Object.freeze([`${p.ipv4}/32`, `${p.ipv6}/128`, ...p.exitRouteStrs]);
      this.base_.set(j, b);
    }
    return b;
  }

  /** Peers whose AllowedIPs may depend on the viewer (primary routers, disable-ipv4), ascending. */
  get special(): readonly number[] {
    if (this.special_ === undefined) {
      // Exit nodes are viewer-specific when not every node may use them.
      const exits = this.index.exitViewers() === null ? [] : this.topo.nodes.filter((n) => n.isExit).map((n) => n.idx);
      this.special_ = [...new Set([...this.primaries.keys(), ...this.noV4, ...exits])].sort((a, b) => a - b);
    }
    return this.special_;
  }

  /** Whether every peer's AllowedIPs for `viewer` depend only on the peer unless the peer is {@link special}. */
  plainViewer(viewer: NodeInfo): boolean {
    return !this.noV4.has(viewer.idx) && !(this.viaRules.length > 0 && this.steering(viewer).size > 0);
  }

  /** AllowedIPs of peer `j` as seen by `viewer`; the arrays are shared between viewers and frozen. */
  forPeer(viewer: NodeInfo, j: number): readonly string[] {
    const p = this.topo.nodes[j];
    const prim = this.primaries.get(j);
    const steer = this.viaRules.length > 0 ? this.steering(viewer) : null;
    const noV4 = this.noV4.size > 0 && (this.noV4.has(viewer.idx) || this.noV4.has(j));
    // Exit routes only for viewers allowed to use exit nodes ("*" or autogroup:internet).
    const exitDenied = p.isExit && !this.exitAllowed(viewer);
    if (!prim && !steer?.size && !noV4 && !exitDenied) return this.base(j);
    if (steer?.size || (prim && prim.length > 28)) return this.build(p, viewer, prim ?? [], steer ?? new Map(), noV4, exitDenied);
    // Common case: the variant is determined by which primary routes the viewer may use.
    const prims = prim ?? [];
    let mask = (noV4 ? 1 : 0) | (exitDenied ? 2 : 0);
    prims.forEach((r, k) => {
      const range = p.subnetRoutes[p.subnetRouteStrs.indexOf(r)];
      // A standby router for the same subnet always learns the primary's route.
      if (viewer.subnetRouteStrs.includes(r) || this.index.canAccessRoute(viewer, r, range)) mask |= 4 << k;
    });
    let perPeer = this.masked.get(j);
    if (!perPeer) {
      perPeer = new Map();
      this.masked.set(j, perPeer);
    }
    let v = perPeer.get(mask);
    if (!v) {
      const routes = prims.filter((_, k) => (mask & (4 << k)) !== 0);
      v = Object.freeze([...(noV4 ? [] : [`${p.ipv4}/32`]), `${p.ipv6}/128`, ...routes, ...(exitDenied ? [] : p.exitRouteStrs)]);
      perPeer.set(mask, v);
    }
    return v;
  }

  /** Whether `viewer` may use approved exit nodes (RuleIndex.exitViewers). */
  private exitAllowed(viewer: NodeInfo): boolean {
    const v = this.index.exitViewers();
    return v === null || v.has(viewer.idx);
  }

  private build(p: NodeInfo, viewer: NodeInfo, prim: string[], steer: Map<string, number>, noV4: boolean, exitDenied: boolean): string[] {
    const routes: string[] = [];
    for (const r of prim) {
      if (steer.has(r)) continue;
      const range = p.subnetRoutes[p.subnetRouteStrs.indexOf(r)];
      if (viewer.subnetRouteStrs.includes(r) || this.index.canAccessRoute(viewer, r, range)) routes.push(r);
    }
    for (const [r, via] of steer) if (via === p.idx) routes.push(r);
    return [...(noV4 ? [] : [`${p.ipv4}/32`]), `${p.ipv6}/128`, ...routes, ...(exitDenied ? [] : p.exitRouteStrs)];
  }
}

/** Whether the ascending list contains `x`. */
export function sortedHas(list: readonly number[], x: number): boolean {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = list[mid];
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The AllowedIPs `viewer` gets that differ from the peers' {@link AllowedIPs.base} arrays,
 * for the peers of its ascending `list`; null when none differ. Only viewer-specific
 * peers are examined unless the viewer itself is special (disable-ipv4, via steering).
 */
export function peerOverrides(allowed: AllowedIPs, viewer: NodeInfo, list: readonly number[]): Map<number, readonly string[]> | null {
  let out: Map<number, readonly string[]> | null = null;
  const check = (j: number): void => {
    if (j === viewer.idx) return;
    const v = allowed.forPeer(viewer, j);
    if (sameStrings(v, allowed.base(j))) return;
    out ??= new Map();
    out.set(j, v);
  };
  if (allowed.plainViewer(viewer)) {
    for (const j of allowed.special) if (sortedHas(list, j)) check(j);
  } else {
    for (const j of list) check(j);
  }
  return out;
}
