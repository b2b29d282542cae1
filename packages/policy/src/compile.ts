/** compilePolicy: policy + topology → what the control plane sends each node. */
import type { FilterRule } from "@lattice/types";
import { parseAlias } from "./alias.js";
import { SrcKeys, compileGrant, mergeRules, selfRulesFor, srcMatches, type CompiledGrant, type CompiledRule } from "./filter.js";
import { expandCompiled, type CompactNode, type CompiledPolicy, type NodeCompiled } from "./compiled.js";
import { AllowedIPs, computePeers, peerOverrides } from "./peers.js";
import { RuleIndex, type RuleCover } from "./ruleindex.js";
import type { Grant, Policy } from "./model.js";
import { compileNodeAttrs } from "./nodeattrs.js";
import { Resolver } from "./resolve.js";
import { SshCompiler, validateSshDomains } from "./ssh.js";
import { runPolicyTests, runSshTests } from "./tests.js";
import { withTestDevices } from "./phantoms.js";
import { indexTopology, type NodeInfo, type Topology, type TopologyIndex } from "./topology.js";

/** Options for {@link compilePolicy}. */
export interface CompileOptions {
  /** Base URL of the control server, used in SSH check-mode URLs. Default "https://unused". */
  serverUrl?: string;
  /** Tailnet setting "device auto-updates" (the `default-auto-update` capability). Default false. */
  autoUpdate?: boolean;
  /**
   * Run the checks that depend on the tailnet's data: the policy's `tests` and `sshTests`,
   * and that `localpart:*@domain` / `user:*@domain` name the tailnet's domain (a failing
   * check throws PolicyError). Default true. Tailscale runs them when a policy is saved
   * (`policy set`/`check`), never when nodes or users change, so a data change cannot
   * make a saved policy stop compiling: a running server compiles with `checks: false`.
   */
  checks?: boolean;
}

const ALLOW_ALL_POS = { line: 0, column: 0 };

/** The implicit grant of a policy without `acls` and `grants`. */
export function allowAllGrant(): Grant {
  const star = parseAlias("*", ALLOW_ALL_POS);
  return { src: [star], dst: [star], ip: [{ proto: null, ports: [{ First: 0, Last: 65535 }] }], app: null, via: [], pos: ALLOW_ALL_POS };
}

/** Elects a primary node per approved subnet route: the earliest registered serving node. */
export function electPrimaries(topo: TopologyIndex): Map<number, string[]> {
  const seen = new Set<string>();
  const out = new Map<number, string[]>();
  for (const n of [...topo.nodes].sort((a, b) => a.order - b.order || a.idx - b.idx)) {
    for (const r of n.subnetRouteStrs) {
      if (seen.has(r)) continue;
      seen.add(r);
      const l = out.get(n.idx) ?? [];
      l.push(r);
      out.set(n.idx, l);
    }
  }
  return out;
}

/** Compiles a parsed policy for every node of the topology. Throws PolicyError when the policy is rejected. */
export function compilePolicy(policy: Policy, topology: Topology, opts: CompileOptions = {}): Record<string, NodeCompiled> {
  return expandCompiled(compilePolicyCompact(policy, topology, opts));
}

/**
 * Compiles a parsed policy for every node, compact form (what the server keeps: peer lists
 * and AllowedIPs arrays shared between nodes). Throws PolicyError when the policy is rejected.
 */
export function compilePolicyCompact(policy: Policy, topology: Topology, opts: CompileOptions = {}): CompiledPolicy {
  return compileWithState(policy, topology, opts).compiled;
}

/** A full compile's intermediate results (what {@link IncrementalCompiler} starts from). */
export interface CompileState {
  /** The output. */
  compiled: CompiledPolicy;
  /** The indexed topology (approved routes as given: the compiler never auto-approves). */
  topo: TopologyIndex;
  /** The alias resolver of this compile. */
  resolver: Resolver;
  /** Compiled grants by position in the grant list compiled (policy.grants, or the implicit allow-all). */
  grants: (CompiledGrant | null)[];
  /** autogroup:self rules per user id. */
  selfRules: Map<number, CompiledRule[]>;
  /** Rule coverage by rule object. */
  covers: WeakMap<CompiledRule, RuleCover>;
  /** The SSH compiler (null without `ssh`). */
  ssh: SshCompiler | null;
}

/** {@link compilePolicyCompact} keeping its intermediate results. */
export function compileWithState(policy: Policy, topology: Topology, opts: CompileOptions = {}): CompileState {
  const topo = indexTopology(topology);
  const resolver = new Resolver(policy, topo);
  const checks = opts.checks !== false;
  if (checks && policy.ssh) validateSshDomains(policy.ssh, topo.users);

  const grantList = policy.allowAll ? [allowAllGrant()] : policy.grants;
  const grants = grantList.map((g) => compileGrant(resolver, g));
  const compiled = grants.filter((c): c is CompiledGrant => c !== null);
  // autogroup:self rules depend only on the destination's user: compile them once per user.
  const rules: CompiledRule[] = compiled.flatMap((c) => c.rules);
  const selfGrants = compiled.filter((c) => c.self);
  const selfRules = new Map<number, CompiledRule[]>();
  if (selfGrants.length > 0) {
    for (const node of topo.nodes) {
      if (!node.user || node.tagged || selfRules.has(node.user.id)) continue;
      const mine = selfGrants.flatMap((cg) => selfRulesFor(resolver, cg, node));
      selfRules.set(node.user.id, mine);
      rules.push(...mine);
    }
  }
  const covers = new WeakMap<CompiledRule, RuleCover>();
  const index = new RuleIndex(topo, rules, covers);
  const srcKeys = new SrcKeys();
  const filterFor = (node: NodeInfo): FilterRule[] => mergeRules(index.filterRules(node), srcKeys);

  // Tests naming identities without devices run on the topology plus stand-in devices
  // for them (that compile throws when a test fails); otherwise on this one. Only when
  // the save-time checks are asked for (`checks`).
  const withDevices = checks && policy.tests.length + policy.sshTests.length > 0 ? withTestDevices(policy, topology, resolver) : null;
  if (withDevices) compileWithState(policy, withDevices, opts);
  else if (checks) runPolicyTests(policy, resolver, filterFor);
  const ssh = policy.ssh ? new SshCompiler(resolver, policy.ssh, opts.serverUrl ?? "https://unused") : null;
  if (checks && !withDevices) runSshTests(policy, resolver, ssh);

  const primaries = electPrimaries(topo);
  const peers = computePeers(topo, index);
  const capMaps = compileNodeAttrs(policy, resolver, { autoUpdate: opts.autoUpdate ?? false });
  const noV4 = new Set([...capMaps].filter(([, m]) => "disable-ipv4" in m).map(([i]) => i));
  const allowed = new AllowedIPs(topo, index, primaries, noV4, srcMatches);

  const baseAllowed = topo.nodes.map((n) => allowed.base(n.idx));
  const nodes: CompactNode[] = [];
  for (const node of topo.nodes) {
    const nc: CompactNode = { packetFilter: filterFor(node), peers: { list: peers[node.idx], overrides: peerOverrides(allowed, node, peers[node.idx]) } };
    if (ssh) {
      const sshRules = ssh.rulesFor(node);
      if (sshRules.length > 0) nc.ssh = sshRules;
    }
    const pr = primaries.get(node.idx);
    if (pr) nc.primaryRoutes = pr;
    const cm = capMaps.get(node.idx);
    if (cm) nc.capMap = cm;
    nodes.push(nc);
  }
  return {
    compiled: { names: topo.nodes.map((n) => n.name), ids: topo.nodes.map((n) => topology.nodes[n.name]?.id), nodes, baseAllowed },
    topo,
    resolver,
    grants,
    selfRules,
    covers,
    ssh,
  };
}
