/**
 * Server-side lookup for SSH check mode (HoldAndDelegate): which policy `ssh` rule a
 * delegated check is about. The URL the compiler emits carries only the source and
 * destination node ids and the local user (Tailscale's shape, kept byte-identical for
 * conformance), so the control server finds the rule again — the first check rule the
 * destination node applies to that source and local user — and reads its `checkPeriod`.
 */
import type { Policy, SshRule } from "./model.js";
import { Resolver } from "./resolve.js";
import { SshCompiler } from "./ssh.js";
import { indexTopology, type NodeInfo, type Topology } from "./topology.js";

/** Default check period (Tailscale's): 12 hours, in seconds. */
export const DEFAULT_SSH_CHECK_PERIOD_SEC = 12 * 3600;

/** The policy rule a check is about. */
export interface SshCheckRule {
  /** Position in the policy's `ssh` list. */
  index: number;
  /** The rule. */
  rule: SshRule;
  /** How long an approval lasts, seconds: the rule's `checkPeriod`, default 12 h; 0 = `always` (every connection is checked). */
  checkPeriodSec: number;
  /**
   * The rule's content as a canonical string (action, src, dst, users, checkPeriod,
   * acceptEnv as written; no positions): approvals are kept per rule content, so moving a
   * rule keeps them and editing it asks again.
   */
  key: string;
}

/** The canonical content string of an SSH rule (see {@link SshCheckRule.key}). */
export function sshRuleKey(rule: SshRule): string {
  return JSON.stringify({
    action: rule.action,
    src: rule.src.map((a) => a.text),
    dst: rule.dst.map((a) => a.text),
    users: rule.users,
    checkPeriod: rule.checkPeriod ?? null,
    acceptEnv: rule.acceptEnv ?? null,
  });
}

/**
 * Check-rule lookups for one (policy, topology) pair; build once per tailnet state and
 * query per request (each query walks only the destination's rules).
 */
export class SshCheckIndex {
  readonly #ssh: SshCompiler | null;
  readonly #byId = new Map<number, NodeInfo>();

  /** Resolves the policy's SSH rules over `topology` (nodes carry their `id`). */
  constructor(policy: Policy, topology: Topology) {
    const topo = indexTopology(topology);
    this.#ssh = policy.ssh && policy.ssh.length > 0 ? new SshCompiler(new Resolver(policy, topo), policy.ssh, "https://unused") : null;
    for (const n of topo.nodes) {
      const id = topology.nodes[n.name]?.id;
      if (id !== undefined) this.#byId.set(id, n);
    }
  }

  /**
   * The check rule destination `dstId` applies when node `srcId` connects as `localUser`
   * (ids are topology node ids), or null: unknown node, or no check rule allows it.
   */
  find(srcId: number, dstId: number, localUser: string): SshCheckRule | null {
    const src = this.#byId.get(srcId);
    const dst = this.#byId.get(dstId);
    if (!this.#ssh || !src || !dst) return null;
    const m = this.#ssh.checkRuleFor(src, dst, localUser);
    if (!m) return null;
    const period = m.rule.checkPeriod ?? DEFAULT_SSH_CHECK_PERIOD_SEC;
    return { index: m.index, rule: m.rule, checkPeriodSec: period, key: sshRuleKey(m.rule) };
  }
}
