/** Compilation of grants (and ACLs) into per-node tailcfg packet filters. */
import type { CapGrant, FilterRule, NetPortRange } from "@lattice/types";
import {
  IPSet,
  TAILNET_RANGE_STRINGS,
  formatPrefix,
  formatPrefixFull,
  INTERNET_RANGES,
  isPublicRange,
  rangeContains,
  rangesOverlap,
  type IPRange,
} from "./ip.js";
import type { Alias, Grant } from "./model.js";
import { resolvedStrings, type Resolved, type Resolver } from "./resolve.js";
import type { NodeInfo } from "./topology.js";

/** A destination entry of a rule, with the nodes it lands on. */
interface DstEntry {
  /** The wire form. */
  out: NetPortRange;
  /** Range, or null for "*". */
  range: IPRange | null;
  /** Whether the range lies in the public internet: it also lands on approved exit nodes. */
  public?: boolean;
}

/** A compiled rule before per-node reduction. */
export interface CompiledRule {
  /** Wire SrcIPs. */
  srcIPs: string[];
  /** Source match data (for peers): node indexes and ranges. */
  src: Resolved;
  /** Whether the sources are every address (autogroup:danger-all / "*" with routes). */
  srcAll: boolean;
  /** IPProto or null. */
  proto: number[] | null;
  /** DstPorts entries. */
  dsts: DstEntry[];
  /** CapGrant entries (app grants). */
  caps: { dsts: IPRange[]; capMap: Record<string, unknown[] | null> }[];
  /** Whether destinations include autogroup:internet (peer visibility of exit nodes). */
  internet: boolean;
  /** Compiled for autogroup:self (one destination user's devices). */
  selfOnly: boolean;
  /** Via grants: the only nodes the rule lands on. */
  onlyNodes?: Set<number>;
  /** Only for peer visibility (app-only via grants); never sent as a filter. */
  peerOnly?: boolean;
}

/** Grant compiled once, with deferred per-node parts. */
export interface CompiledGrant {
  /** Rules shared by every node. */
  rules: CompiledRule[];
  /** autogroup:self part: resolved sources and the network/app caps. */
  self: { src: Resolved; grant: Grant } | null;
}

const COMPANIONS: [string, string][] = [
  ["tailscale.com/cap/drive", "tailscale.com/cap/drive-sharer"],
  ["tailscale.com/cap/relay", "tailscale.com/cap/relay-target"],
];

function isAG(a: Alias, name: string): boolean {
  return a.kind === "autogroup" && a.name === name;
}

/** SrcIPs as Tailscale prints them for a grant's sources. */
function sourceStrings(resolver: Resolver, src: readonly Alias[], all: Resolved): string[] {
  if (src.some((a) => isAG(a, "danger-all"))) return ["*"];
  const hasWildcard = src.some((a) => a.kind === "wildcard");
  if (!hasWildcard) return resolvedStrings(all);
  const out = [...TAILNET_RANGE_STRINGS, ...resolver.topo.allSubnetRoutes];
  const seen = new Set(out);
  for (const a of src) {
    if (a.kind === "wildcard") continue;
    for (const s of resolvedStrings(resolver.resolve(a))) {
      if (!seen.has(s)) {
        seen.add(s);
        out.push(s);
      }
    }
  }
  return out;
}

/** Compiles one grant's shared part. */
export function compileGrant(resolver: Resolver, grant: Grant): CompiledGrant | null {
  if (grant.src.length === 0 || grant.dst.length === 0) return null;
  const src = resolver.resolveAll(grant.src);
  if (src.ranges.length === 0 && !grant.app) return null;
  const srcAll = grant.src.some((a) => isAG(a, "danger-all"));
  // ACLs become one grant per destination with the same sources: format them once (the
  // shared SrcIPs array also lets later stages work per distinct list).
  const { srcIPs, srcPrefixes } = resolver.memo(`src\u0000${grant.src.map((a) => a.text).join("\u0000")}`, () => ({
    srcIPs: src.ranges.length === 0 ? [] : sourceStrings(resolver, grant.src, src),
    srcPrefixes: new IPSet(src.ranges).prefixes(),
  }));
  if (srcIPs.length > 0 && grant.src.some((a) => a.kind === "wildcard")) {
    // "*" also matches traffic from approved subnets: record them for peer matching.
    for (const n of resolver.topo.nodes) for (const r of n.subnetRoutes) src.ranges.push(r);
  }
  const selfDsts = grant.dst.filter((a) => isAG(a, "self"));
  const otherDsts = grant.dst.filter((a) => !isAG(a, "self"));
  const rules: CompiledRule[] = [];
  // An IP set built from autogroup:internet lets its sources use exit nodes too (kb/1387).
  const internet = otherDsts.some((a) => isAG(a, "internet") || (a.kind === "ipset" && resolver.policy.ipsets.get(a.name)?.internet === true));
  if (otherDsts.length > 0 && grant.via.length > 0 && srcIPs.length > 0) {
    // Via: the rule lands on routers carrying a via tag whose routes overlap a destination.
    const prefixes = otherDsts.filter((d) => d.kind === "prefix" || d.kind === "host" || d.kind === "ipset").flatMap((d) => new IPSet(resolver.resolve(d).ranges).prefixes());
    const onlyNodes = new Set<number>();
    for (const n of resolver.topo.nodes) {
      if (!grant.via.some((t) => n.tags.includes(t))) continue;
      if (n.subnetRoutes.some((r) => prefixes.some((p) => rangesOverlap(p, r))) || (internet && n.isExit)) onlyNodes.add(n.idx);
    }
    for (const ipp of grant.ip) {
      const dsts: DstEntry[] = [];
      for (const pref of prefixes) for (const p of ipp.ports) dsts.push({ out: { IP: formatPrefixFull(pref), Ports: { ...p } }, range: pref });
      if (internet) {
        for (const pref of new IPSet(INTERNET_RANGES).prefixes()) {
          for (const p of ipp.ports) dsts.push({ out: { IP: formatPrefixFull(pref), Ports: { ...p } }, range: pref, public: true });
        }
      }
      if (dsts.length > 0 || internet) {
        rules.push({ srcIPs, src, srcAll, proto: ipp.proto, dsts, caps: [], internet, selfOnly: false, onlyNodes });
      }
    }
    if (grant.ip.length === 0 && grant.app) {
      // App-only via grants send no filter but make the sources and the via routers peers.
      const dsts: DstEntry[] = prefixes.map((pref) => ({ out: { IP: formatPrefixFull(pref), Ports: { First: 0, Last: 65535 } }, range: pref }));
      rules.push({ srcIPs, src, srcAll, proto: null, dsts, caps: [], internet, selfOnly: false, onlyNodes, peerOnly: true });
    }
  }
  if (otherDsts.length > 0 && grant.via.length === 0) {
    for (const ipp of grant.ip) {
      const dsts: DstEntry[] = [];
      for (const d of otherDsts) {
        if (d.kind === "wildcard") {
          for (const p of ipp.ports) dsts.push({ out: { IP: "*", Ports: { ...p } }, range: null });
          continue;
        }
        // autogroup:internet: the public ranges, which land on approved exit nodes (their
        // filter must let the forwarded traffic through); other public destinations too.
        const ranges = isAG(d, "internet") ? INTERNET_RANGES : resolver.resolve(d).ranges;
        for (const pref of new IPSet(ranges).prefixes()) {
          const pub = isPublicRange(pref);
          for (const p of ipp.ports) dsts.push({ out: { IP: formatPrefix(pref), Ports: { ...p } }, range: pref, public: pub });
        }
      }
      if ((dsts.length > 0 || internet) && srcIPs.length > 0) {
        rules.push({ srcIPs, src, srcAll, proto: ipp.proto, dsts, caps: [], internet, selfOnly: false });
      }
    }
    if (grant.app) {
      const caps: CompiledRule["caps"] = [];
      const dstStrings: string[] = [];
      const dstAll: Resolved = { nodes: new Set(), ranges: [] };
      for (const d of otherDsts) {
        const r = resolver.resolve(d);
        const prefixes = new IPSet(r.ranges).prefixes();
        caps.push({ dsts: prefixes, capMap: grant.app });
        dstStrings.push(...(d.kind === "wildcard" ? TAILNET_RANGE_STRINGS : prefixes.map(formatPrefix)));
        for (const n of r.nodes) dstAll.nodes.add(n);
        dstAll.ranges.push(...r.ranges);
      }
      rules.push({ srcIPs, src, srcAll, proto: null, dsts: [], caps, internet: false, selfOnly: false });
      if (otherDsts.some((a) => a.kind === "wildcard")) dstStrings.push(...resolver.topo.allSubnetRoutes);
      for (const [orig, comp] of COMPANIONS) {
        if (!(orig in grant.app)) continue;
        rules.push({
          srcIPs: dstStrings,
          src: dstAll,
          srcAll: false,
          proto: null,
          dsts: [],
          caps: [{ dsts: srcPrefixes, capMap: { [comp]: null } }],
          internet: false,
          selfOnly: false,
        });
      }
    }
  }
  return { rules, self: selfDsts.length > 0 ? { src, grant } : null };
}

/** Rules for autogroup:self destinations, for one node. */
export function selfRulesFor(resolver: Resolver, cg: CompiledGrant, node: NodeInfo): CompiledRule[] {
  if (!cg.self || node.tagged || !node.user) return [];
  const same = resolver.topo.byUser.get(node.user.id) ?? [];
  const srcNodes = same.filter((n) => cg.self!.src.nodes.has(n.idx));
  if (srcNodes.length === 0) return [];
  const src: Resolved = { nodes: new Set(srcNodes.map((n) => n.idx)), ranges: [] };
  for (const n of srcNodes) src.ranges.push({ v6: false, lo: n.v4, hi: n.v4 }, { v6: true, lo: n.v6, hi: n.v6 });
  const srcIPs = resolvedStrings(src);
  const out: CompiledRule[] = [];
  for (const ipp of cg.self.grant.ip) {
    const dsts: DstEntry[] = [];
    for (const n of same) {
      for (const p of ipp.ports) {
        dsts.push({ out: { IP: n.ipv4, Ports: { ...p } }, range: { v6: false, lo: n.v4, hi: n.v4 } });
        dsts.push({ out: { IP: n.ipv6, Ports: { ...p } }, range: { v6: true, lo: n.v6, hi: n.v6 } });
      }
    }
    out.push({ srcIPs, src, srcAll: false, proto: ipp.proto, dsts, caps: [], internet: false, selfOnly: true });
  }
  const app = cg.self.grant.app;
  if (app) {
    const caps = same.map((n) => ({
      dsts: [
        { v6: false, lo: n.v4, hi: n.v4 },
        { v6: true, lo: n.v6, hi: n.v6 },
      ],
      capMap: app,
    }));
    out.push({ srcIPs, src, srcAll: false, proto: null, dsts: [], caps, internet: false, selfOnly: true });
    const dstSet: Resolved = { nodes: new Set(same.map((n) => n.idx)), ranges: caps.flatMap((c) => c.dsts) };
    for (const [orig, comp] of COMPANIONS) {
      if (!(orig in app)) continue;
      out.push({
        srcIPs: same.flatMap((n) => [n.ipv4, n.ipv6]),
        src: dstSet,
        srcAll: false,
        proto: null,
        dsts: [],
        caps: [{ dsts: new IPSet(src.ranges).prefixes(), capMap: { [comp]: null } }],
        internet: false,
        selfOnly: true,
      });
    }
  }
  return out;
}

function nodeRange(n: NodeInfo, v6: boolean): IPRange {
  return v6 ? { v6, lo: n.v6, hi: n.v6 } : { v6, lo: n.v4, hi: n.v4 };
}

/** Whether a DstPorts entry applies to the node (its address, an approved route, or exit traffic). */
function dstApplies(d: DstEntry, n: NodeInfo): boolean {
  if (!d.range) return true;
  const r = d.range;
  if (r.v6 ? r.lo <= n.v6 && n.v6 <= r.hi : r.lo <= n.v4 && n.v4 <= r.hi) return true;
  for (const s of n.subnetRoutes) if (rangesOverlap(s, r)) return true;
  return d.public === true && n.isExit;
}

/** Reduces one rule to the node; null when nothing applies. */
export function reduceRule(rule: CompiledRule, n: NodeInfo): FilterRule | null {
  if (rule.peerOnly || (rule.onlyNodes && !rule.onlyNodes.has(n.idx))) return null;
  if (rule.caps.length > 0) {
    const grants: CapGrant[] = [];
    for (const cg of rule.caps) {
      const keep = new Map<string, IPRange>();
      for (const d of cg.dsts) {
        for (const v6 of [false, true]) {
          const nr = nodeRange(n, v6);
          if (rangeContains(d, nr)) keep.set(formatPrefixFull(nr), nr);
        }
      }
      for (const d of cg.dsts) {
        for (const s of n.subnetRoutes) if (rangesOverlap(d, s)) keep.set(formatPrefixFull(d), d);
      }
      if (keep.size > 0) grants.push({ Dsts: [...keep.keys()], CapMap: cg.capMap });
    }
    if (grants.length === 0) return null;
    return { SrcIPs: rule.srcIPs, CapGrant: grants };
  }
  const dsts = rule.dsts.filter((d) => dstApplies(d, n)).map((d) => d.out);
  if (dsts.length === 0) return null;
  const out: FilterRule = { SrcIPs: rule.srcIPs, DstPorts: dsts };
  if (rule.proto) out.IPProto = rule.proto;
  return out;
}

/** Short keys for SrcIPs lists: equal contents get the same key, computed once per array object. */
export class SrcKeys {
  private readonly byArray = new WeakMap<readonly string[], string>();
  private readonly byContent = new Map<string, string>();

  /** The key of `list`. */
  key(list: readonly string[]): string {
    let k = this.byArray.get(list);
    if (k === undefined) {
      const content = list.join(",");
      k = this.byContent.get(content);
      if (k === undefined) {
        k = String(this.byContent.size);
        this.byContent.set(content, k);
      }
      this.byArray.set(list, k);
    }
    return k;
  }
}

/** Merges rules with the same SrcIPs and IPProto (DstPorts appended, not deduplicated); `keys` caches SrcIPs keys across calls. */
export function mergeRules(rules: FilterRule[], keys: SrcKeys = new SrcKeys()): FilterRule[] {
  const out: FilterRule[] = [];
  const byKey = new Map<string, FilterRule>();
  for (const r of rules) {
    if (r.CapGrant) {
      out.push(r);
      continue;
    }
    const src = keys.key(r.SrcIPs);
    const key = `${src}|${(r.IPProto ?? []).join(",")}`;
    const prev = byKey.get(key);
    // prev is our own copy (below) with its own DstPorts array: append in place.
    if (prev) for (const d of r.DstPorts ?? []) prev.DstPorts!.push(d);
    else {
      const copy: FilterRule = { ...r, DstPorts: [...(r.DstPorts ?? [])] };
      byKey.set(key, copy);
      out.push(copy);
    }
  }
  return out;
}

/** Whether a rule's sources include the node (its addresses or its approved routes). */
export function srcMatches(rule: CompiledRule, n: NodeInfo): boolean {
  if (rule.srcAll || rule.src.nodes.has(n.idx)) return true;
  for (const s of n.subnetRoutes) for (const r of rule.src.ranges) if (rangesOverlap(s, r)) return true;
  return false;
}
