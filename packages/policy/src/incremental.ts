/**
 * Incremental compilation: when nodes join or change (addresses, tags, user), recompute
 * only what depends on them — the grants whose aliases contain them, their users'
 * autogroup:self rules, the packet filters and SSH rules of the destinations those rules
 * reach, and the peer lists that change — and report which nodes were touched. The
 * output equals what {@link compilePolicyCompact} gives for the same topology (the test
 * suite checks this with random change sequences). Anything outside that envelope
 * (removals or reordering, route changes, new users, via grants, the first compile)
 * falls back to a full compile and reports `touched: null`.
 *
 * It compiles a running tailnet: `compile` never evaluates the policy's data checks
 * (`tests`, `sshTests`, SSH domains; `checks: false` of {@link CompileOptions}), which
 * Tailscale runs only when a policy is saved — {@link IncrementalCompiler.check} does
 * that, and its full compile is the state later `compile` calls continue from.
 */
import { allowAllGrant, compileWithState, electPrimaries, type CompileOptions, type CompileState } from "./compile.js";
import type { CompactNode, CompiledPolicy } from "./compiled.js";
import { SrcKeys, compileGrant, mergeRules, selfRulesFor, srcMatches, type CompiledGrant, type CompiledRule } from "./filter.js";
import type { Alias, Grant, Policy } from "./model.js";
import { compileNodeAttrs } from "./nodeattrs.js";
import { AllowedIPs, computePeers, peerOverrides, sortedHas } from "./peers.js";
import { Resolver } from "./resolve.js";
import { RuleIndex, type NodeSet } from "./ruleindex.js";
import { SshCompiler } from "./ssh.js";
import { addressKey, indexTopology, type NodeInfo, type Topology, type TopologyIndex, type TopologyNode } from "./topology.js";

/** What {@link IncrementalCompiler.compile} returns. */
export interface IncrementalResult {
  /** The compilation (equal to a full compile of the same topology). */
  compiled: CompiledPolicy;
  /**
   * Topology indexes whose compiled view may differ from the previous result (sorted;
   * conservative: may include unchanged nodes, never misses a changed one; nodes that
   * were not touched keep the previous result's objects). null after a full compile.
   */
  touched: number[] | null;
}

/** A compile's state plus what tells whether the next topology is incremental from it. */
interface State extends CompileState {
  names: string[];
  keys: string[];
  userKey: string;
}

function deepEq(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!deepEq((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameDsts(a: CompiledRule["dsts"], b: CompiledRule["dsts"]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x.out.IP !== y.out.IP || x.out.Ports.First !== y.out.Ports.First || x.out.Ports.Last !== y.out.Ports.Last) return false;
    if (x.range === null || y.range === null) {
      if (x.range !== y.range) return false;
    } else if (x.range.v6 !== y.range.v6 || x.range.lo !== y.range.lo || x.range.hi !== y.range.hi) return false;
  }
  return true;
}

/** Same rule content (what reaches packet filters), ignoring node-set bookkeeping. */
function sameRule(a: CompiledRule, b: CompiledRule): boolean {
  return (
    a.srcAll === b.srcAll &&
    a.internet === b.internet &&
    a.selfOnly === b.selfOnly &&
    !!a.peerOnly === !!b.peerOnly &&
    !a.onlyNodes &&
    !b.onlyNodes &&
    sameStrings(a.srcIPs, b.srcIPs) &&
    deepEq(a.proto, b.proto) &&
    sameDsts(a.dsts, b.dsts) &&
    deepEq(a.caps, b.caps)
  );
}

/** Whether a policy can be compiled incrementally at all. */
function policyEligible(policy: Policy): boolean {
  return policy.grants.every((g) => g.via.length === 0);
}

/** Everything of a topology node the compiler reads, as one string. */
function nodeKey(n: TopologyNode): string {
  return `${n.ipv4}|${n.ipv6}|${n.user ?? "\u0000"}|${n.id ?? ""}|${n.hostname ?? ""}|${(n.tags ?? []).join(",")}|${(n.routable_ips ?? []).join(",")}|${(n.approved_routes ?? []).join(",")}`;
}

/**
 * Keeps the state of the last compilation of one policy and recompiles incrementally
 * when only nodes were added (appended to the topology) or changed in place.
 */
export class IncrementalCompiler {
  #s: State | null = null;
  /** The grants compiled: the policy's, or the implicit allow-all of a policy without acls/grants. */
  readonly #grants: readonly Grant[];

  /** The options of every compile: the given ones with `checks: false`. */
  readonly opts: CompileOptions;

  /** Binds the (parsed, unchanging) policy and options; a policy change needs a new instance. */
  constructor(
    readonly policy: Policy,
    opts: CompileOptions = {},
  ) {
    this.opts = { ...opts, checks: false };
    this.#grants = policy.allowAll ? [allowAllGrant()] : policy.grants;
  }

  /**
   * Save-time validation: a full compile of `topology` with the data checks (`tests`,
   * `sshTests`, SSH domains). Throws PolicyError when the policy is rejected; otherwise
   * the compile becomes the state the next {@link compile} continues from (so saving a
   * policy compiles the tailnet once).
   */
  check(topology: Topology): CompiledPolicy {
    this.#s = null;
    const names = Object.keys(topology.nodes ?? {});
    const s = this.full(topology, names, names.map((n) => nodeKey(topology.nodes[n])), JSON.stringify(topology.users ?? []), true);
    this.#s = s;
    return s.compiled;
  }

  /**
   * Compiles `topology`, incrementally from the previous call when possible (the
   * previous result itself, `touched: []`, when nothing the compiler reads changed).
   * Never runs the data checks. Throws PolicyError like compilePolicyCompact (a
   * topology it cannot index); the next call then compiles in full.
   */
  compile(topology: Topology): IncrementalResult {
    const policy = this.policy;
    const names = Object.keys(topology.nodes ?? {});
    const keys = names.map((n) => nodeKey(topology.nodes[n]));
    const userKey = JSON.stringify(topology.users ?? []);
    const prev = this.#s;
    if (prev && prev.userKey === userKey && sameStrings(prev.names, names) && sameStrings(prev.keys, keys)) return { compiled: prev.compiled, touched: [] };
    let dirty: number[] | null = null;
    if (prev && policyEligible(policy) && prev.userKey === userKey && names.length >= prev.names.length) {
      dirty = [];
      for (let i = 0; i < names.length; i++) {
        if (i >= prev.names.length) dirty.push(i);
        else if (names[i] !== prev.names[i]) {
          dirty = null;
          break;
        } else if (keys[i] !== prev.keys[i]) dirty.push(i);
      }
    }
    const topo = prev && dirty ? patchIndex(prev.topo, policy, topology, names, dirty) : null;
    this.#s = null;
    if (!prev || !dirty || !topo) {
      const s = this.full(topology, names, keys, userKey);
      this.#s = s;
      return { compiled: s.compiled, touched: null };
    }
    const s = this.step(prev, topology, topo, names, keys, userKey, dirty);
    this.#s = s.state;
    return { compiled: s.state.compiled, touched: s.touched };
  }

  private full(topology: Topology, names: string[], keys: string[], userKey: string, checks = false): State {
    const { compiled, topo, resolver, grants, selfRules, covers, ssh } = compileWithState(this.policy, topology, { ...this.opts, checks });
    return { names, keys, userKey, topo, resolver, grants, selfRules, covers, ssh, compiled };
  }

  private step(prev: State, topology: Topology, topo: TopologyIndex, names: string[], keys: string[], userKey: string, dirty: number[]): { state: State; touched: number[] } {
    const policy = this.policy;
    const prevN = prev.names.length;
    const n = topo.nodes.length;
    const pc = prev.compiled;
    const resolver = new Resolver(policy, topo);
    const touchesDirty = (s: ReadonlySet<number> | null): boolean => {
      if (s === null) return dirty.length > 0;
      for (const i of dirty) if (s.has(i)) return true;
      return false;
    };
    const aliasDirty = (a: Alias): boolean => touchesDirty(prev.resolver.resolve(a).nodes) || touchesDirty(resolver.resolve(a).nodes);

    // Grants: recompile those whose aliases contain a changed node (before or after).
    const changedPairs: [CompiledRule[], CompiledRule[]][] = [];
    const grants = this.#grants.map((g, gi) => {
      const old = prev.grants[gi];
      if (![...g.src, ...g.dst].some(aliasDirty)) return old;
      const cg = compileGrant(resolver, g);
      changedPairs.push([old?.rules ?? [], cg?.rules ?? []]);
      return cg;
    });
    // autogroup:self rules: recompute for the users of changed nodes.
    const dirtyUsers = new Set<number>();
    for (const i of dirty) {
      const o = i < prevN ? prev.topo.nodes[i] : undefined;
      if (o?.user && !o.tagged) dirtyUsers.add(o.user.id);
      const m = topo.nodes[i];
      if (m.user && !m.tagged) dirtyUsers.add(m.user.id);
    }
    const selfRules = new Map(prev.selfRules);
    const selfGrants = grants.filter((c): c is CompiledGrant => !!c?.self);
    for (const uid of dirtyUsers) {
      const any = topo.byUser.get(uid)?.[0];
      const next = any ? selfGrants.flatMap((cg) => selfRulesFor(resolver, cg, any)) : [];
      changedPairs.push([prev.selfRules.get(uid) ?? [], next]);
      if (any) selfRules.set(uid, next);
      else selfRules.delete(uid);
    }
    const covers = prev.covers;
    const prevCover = (r: CompiledRule): NodeSet => {
      const c = covers.get(r);
      return c ? c.dst : null;
    };
    const rules = assembleRules(grants, topo, selfRules);
    const index = new RuleIndex(topo, rules, covers);

    // Packet filters: nodes reached by changed rules (content: old and new coverage;
    // same content: where coverage differs), plus the changed nodes.
    const affected = new Set<number>(dirty);
    let all = false;
    const add = (s: NodeSet): void => {
      if (s === null) all = true;
      else for (const i of s) affected.add(i);
    };
    for (const [olds, news] of changedPairs) {
      const same = olds.length === news.length && olds.every((r, k) => sameRule(r, news[k]));
      olds.forEach((r, k) => {
        const a = prevCover(r);
        const b = covers.get(news[k] ?? r)?.dst ?? null;
        if (!same) add(a);
        else if (a === null || b === null) {
          if (a !== b) all = true;
        } else {
          for (const i of a) if (!b.has(i)) affected.add(i);
          for (const i of b) if (!a.has(i)) affected.add(i);
        }
      });
      if (!same) for (const r of news) add(covers.get(r)?.dst ?? null);
    }
    const touched = new Set<number>(affected);
    if (all) for (let i = 0; i < n; i++) touched.add(i);
    const srcKeys = new SrcKeys();

    // SSH: rules whose sources or destinations contain a changed node.
    const ssh = policy.ssh ? new SshCompiler(resolver, policy.ssh, this.opts.serverUrl ?? "https://unused") : null;
    const sshAffected = new Set<number>(dirty);
    let sshAll = false;
    if (ssh && prev.ssh) {
      const oldDeps = new Map(prev.ssh.deps().map((d) => [d.rule, d]));
      const newDeps = new Map(ssh.deps().map((d) => [d.rule, d]));
      for (const rule of policy.ssh ?? []) {
        const o = oldDeps.get(rule);
        const m = newDeps.get(rule);
        if (!o && !m) continue;
        if (o && m && !touchesDirty(o.src) && !touchesDirty(m.src) && !touchesDirty(o.dst) && !touchesDirty(m.dst)) continue;
        for (const d of [o, m]) {
          if (!d) continue;
          if (d.dst) for (const i of d.dst) sshAffected.add(i);
          if (d.localparts) for (const i of d.src) sshAffected.add(i);
          if (d.hasSelf) for (const uid of dirtyUsers) for (const x of topo.byUser.get(uid) ?? []) sshAffected.add(x.idx);
        }
        if ((!o || !m) && (o ?? m)!.hasSelf) sshAll = true;
      }
    } else if (ssh || prev.ssh) sshAll = true;

    const primaries = electPrimaries(topo);
    const peers = computePeers(topo, index);
    const capMaps = compileNodeAttrs(policy, resolver, { autoUpdate: this.opts.autoUpdate ?? false });
    const noV4 = new Set([...capMaps].filter(([, m]) => "disable-ipv4" in m).map(([i]) => i));
    const allowed = new AllowedIPs(topo, index, primaries, noV4, srcMatches);
    const dirtySet = new Set(dirty);
    const baseAllowed = topo.nodes.map((x) => (x.idx < prevN && !dirtySet.has(x.idx) ? pc.baseAllowed[x.idx] : allowed.base(x.idx)));
    const baseChanged = dirty.filter((j) => j >= prevN || !deepEq(pc.baseAllowed[j], baseAllowed[j]));
    const listMemo = new Map<readonly number[], Map<readonly number[], boolean>>();
    const sameList = (a: readonly number[], b: readonly number[]): boolean => {
      let m = listMemo.get(a);
      if (!m) listMemo.set(a, (m = new Map()));
      let r = m.get(b);
      if (r === undefined) m.set(b, (r = a.length === b.length && a.every((x, k) => x === b[k])));
      return r;
    };
    const seesChanged = new Map<readonly number[], boolean>();

    const nodes: CompactNode[] = [];
    for (const node of topo.nodes) {
      const i = node.idx;
      const old = i < prevN ? pc.nodes[i] : undefined;
      let t = !old;
      const packetFilter = old && !all && !affected.has(i) ? old.packetFilter : mergeRules(index.filterRules(node), srcKeys);
      let list: readonly number[] = peers[i];
      if (old && sameList(old.peers.list, list)) list = old.peers.list;
      else t = true;
      let seen = seesChanged.get(list);
      if (seen === undefined) seesChanged.set(list, (seen = baseChanged.some((j) => j !== i && sortedHas(list, j))));
      if (seen) t = true;
      let overrides = peerOverrides(allowed, node, list);
      if (old && deepEqMap(old.peers.overrides, overrides)) overrides = old.peers.overrides as Map<number, readonly string[]> | null;
      else t = true;
      const nc: CompactNode = { packetFilter, peers: old && list === old.peers.list && overrides === old.peers.overrides ? old.peers : { list, overrides } };
      if (ssh) {
        const sshRules = old && !sshAll && !sshAffected.has(i) ? old.ssh : ssh.rulesFor(node);
        if (sshRules && sshRules.length > 0) nc.ssh = sshRules;
        if (old && sshRules !== old.ssh) t = true;
      }
      const pr = primaries.get(i);
      if (pr) nc.primaryRoutes = old && deepEq(old.primaryRoutes, pr) ? old.primaryRoutes : ((t = true), pr);
      else if (old?.primaryRoutes) t = true;
      const cm = capMaps.get(i);
      if (cm) nc.capMap = old && deepEq(old.capMap, cm) ? old.capMap : ((t = true), cm);
      else if (old?.capMap) t = true;
      if (t) touched.add(i);
      nodes.push(nc);
    }
    const compiled: CompiledPolicy = { names: topo.nodes.map((x) => x.name), ids: topo.nodes.map((x) => topology.nodes[x.name]?.id), nodes, baseAllowed };
    return {
      state: { names, keys, userKey, topo, resolver, grants, selfRules, covers, ssh, compiled },
      touched: [...touched].sort((a, b) => a - b),
    };
  }
}

function deepEqMap(a: ReadonlyMap<number, readonly string[]> | null, b: ReadonlyMap<number, readonly string[]> | null): boolean {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  if (!a || !b) return true;
  for (const [k, v] of b) if (!deepEq(a.get(k), v)) return false;
  return true;
}

/** Users with autogroup:self rules, as the first of their untagged nodes, in topology order. */
function selfUsers(topo: TopologyIndex): NodeInfo[] {
  const done = new Set<number>();
  const out: NodeInfo[] = [];
  for (const node of topo.nodes) {
    if (!node.user || node.tagged || done.has(node.user.id)) continue;
    done.add(node.user.id);
    out.push(node);
  }
  return out;
}

/** The compile's rule list: grant rules in policy order, then each user's autogroup:self rules. */
function assembleRules(grants: readonly (CompiledGrant | null)[], topo: TopologyIndex, selfRules: ReadonlyMap<number, CompiledRule[]>): CompiledRule[] {
  const rules: CompiledRule[] = [];
  for (const g of grants) if (g) rules.push(...g.rules);
  if (grants.some((g) => g?.self)) for (const u of selfUsers(topo)) rules.push(...(selfRules.get(u.user!.id) ?? []));
  return rules;
}

/**
 * The previous topology index with `dirty` nodes (changed in place or appended) replaced;
 * null when a changed node has (or had) approved routes: those affect other nodes.
 */
function patchIndex(prev: TopologyIndex, policy: Policy, topology: Topology, names: string[], dirty: number[]): TopologyIndex | null {
  const nodes = prev.nodes.slice();
  for (const i of dirty) {
    const old = prev.nodes[i];
    if (old && (old.subnetRoutes.length > 0 || old.isExit)) return null;
    const raw = topology.nodes[names[i]];
    const one = indexTopology({ users: topology.users, nodes: { [names[i]]: raw } });
    const info = one.nodes[0];
    if (info.subnetRoutes.length > 0 || info.isExit) return null;
    info.idx = i;
    info.order = raw.id ?? i;
    nodes[i] = info;
  }
  const byAddr = new Map(prev.byAddr);
  const byUser = new Map(prev.byUser);
  const byTag = new Map(prev.byTag);
  const users = new Set<number>();
  const tags = new Set<string>();
  for (const i of dirty) {
    const old = prev.nodes[i];
    if (!old) continue;
    for (const k of [addressKey(false, old.v4), addressKey(true, old.v6)]) if (byAddr.get(k) === i) byAddr.delete(k);
    if (old.user) users.add(old.user.id);
    for (const t of old.tags) tags.add(t);
  }
  for (const i of dirty) {
    const info = nodes[i];
    for (const k of [addressKey(false, info.v4), addressKey(true, info.v6)]) {
      // Two nodes with one address: leave the tie-breaking to a full compile.
      if (byAddr.has(k)) return null;
      byAddr.set(k, i);
    }
    if (info.user) users.add(info.user.id);
    for (const t of info.tags) tags.add(t);
  }
  for (const uid of users) {
    const l = nodes.filter((x) => x.user?.id === uid);
    if (l.length) byUser.set(uid, l);
    else byUser.delete(uid);
  }
  for (const t of tags) {
    const l = nodes.filter((x) => x.tags.includes(t));
    if (l.length) byTag.set(t, l);
    else byTag.delete(t);
  }
  return { nodes, users: prev.users, byAddr, byUser, byTag, allSubnetRoutes: prev.allSubnetRoutes, roles: prev.roles };
}
