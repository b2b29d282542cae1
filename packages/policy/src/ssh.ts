/** Compilation of the policy's `ssh` rules into per-node tailcfg SSH rules. */
import type { SSHAction, SSHPrincipal, SSHRule } from "@lattice/types";
import { PolicyError } from "./errors.js";
import type { SshRule } from "./model.js";
import type { Resolved, Resolver } from "./resolve.js";
import type { NodeInfo, TopologyUser } from "./topology.js";

/** The check-mode URL path; the server URL is prepended. */
export const SSH_CHECK_PATH = "/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER";

/** The tailnet's own domain: the email domain of its first user. */
export function tailnetDomain(users: readonly TopologyUser[]): string {
  const first = [...users].sort((a, b) => a.id - b.id)[0];
  return first ? first.email.slice(first.email.lastIndexOf("@") + 1).toLowerCase() : "";
}

/** Checks `localpart:*@domain` users and `user:*@domain` sources name the tailnet's domain. */
export function validateSshDomains(rules: readonly SshRule[], users: readonly TopologyUser[]): void {
  const domain = tailnetDomain(users);
  rules.forEach((rule, ri) => {
    for (const [i, u] of rule.users.entries()) {
      if (!u.startsWith("localpart:")) continue;
      const m = /^localpart:\*@(.+)$/.exec(u);
      if (!m) continue;
      if (m[1].toLowerCase() !== domain) {
        throw new PolicyError(
          "invalid-value",
          `${m[1]} is not associated with this Tailnet and cannot be used in user:*@<domain> expressions (the tailnet's domain is ${JSON.stringify(domain)})`,
          rule.usersPos[i] ?? rule.pos,
          `ssh[${ri}].users[${i}]`,
          u,
        );
      }
    }
    for (const s of rule.src) {
      if (s.kind === "userDomain" && s.domain.toLowerCase() !== domain) {
        throw new PolicyError(
          "invalid-value",
          `[ssh] ${s.domain} is not associated with this Tailnet and cannot be used in user:*@<domain> expressions (the tailnet's domain is ${JSON.stringify(domain)})`,
          s.pos,
          s.field,
          s.text,
        );
      }
    }
  });
}

/**
 * The local user a `localpart:*@domain` rule maps `u` to: the local part of the user's
 * e-mail when its domain is `domain` (case-insensitive), else null. Never `root`: a
 * localpart mapping cannot grant root (a user whose e-mail is `root@domain` gets no
 * mapping from it); root is reachable only when the rule lists `root` itself.
 */
export function localpartOf(u: TopologyUser, domain: string): string | null {
  const at = u.email.lastIndexOf("@");
  if (at <= 0 || u.email.slice(at + 1).toLowerCase() !== domain.toLowerCase()) return null;
  const lp = u.email.slice(0, at);
  // Case-insensitive: some systems (macOS directory services) resolve "Root" to root.
  return lp.toLowerCase() === "root" ? null : lp;
}

interface RulePrep {
  rule: SshRule;
  /** Position of `rule` in the policy's `ssh` list. */
  index: number;
  src: Resolved;
  action: SSHAction;
  baseUsers: Record<string, string>;
  localparts: Map<number, string> | null;
  userIds: number[];
  byUser: Map<number, SSHPrincipal[]>;
  tagged: SSHPrincipal[];
  /** Every source's principals (users in id order, then tagged), built once and shared by all destinations. */
  all: SSHPrincipal[];
  dst: Set<number> | null;
  hasSelf: boolean;
}

function principals(nodes: readonly NodeInfo[]): SSHPrincipal[] {
  return [...nodes.map((n) => ({ nodeIP: n.ipv4 })), ...nodes.map((n) => ({ nodeIP: n.ipv6 }))];
}

/** Per-policy SSH compilation state; `rulesFor` gives one node's rules. */
export class SshCompiler {
  private readonly preps: RulePrep[] = [];

  /** Resolves every SSH rule once. */
  constructor(
    private readonly resolver: Resolver,
    rules: readonly SshRule[],
    serverUrl: string,
  ) {
    const topo = resolver.topo;
    for (const [index, rule] of rules.entries()) {
      const src = resolver.resolveAll(rule.src);
      if (src.nodes.size === 0) continue;
      const action: SSHAction = rule.action === "accept" ? sshAcceptAction() : { holdAndDelegate: serverUrl + SSH_CHECK_PATH };
      const baseUsers: Record<string, string> = {};
      if (rule.users.includes("autogroup:nonroot")) baseUsers["*"] = "=";
      baseUsers["root"] = rule.users.includes("root") ? "root" : "";
      for (const u of rule.users) {
        if (u === "root" || u === "autogroup:nonroot" || /^localpart:\*@.+$/.test(u)) continue;
        baseUsers[u] = u;
      }
      let localparts: Map<number, string> | null = null;
      for (const u of rule.users) {
        const m = /^localpart:\*@(.+)$/.exec(u);
        if (!m) continue;
        localparts ??= new Map();
        for (const usr of topo.users) {
          const lp = localpartOf(usr, m[1]);
          if (lp !== null) localparts.set(usr.id, lp);
        }
      }
      const userNodes = new Map<number, NodeInfo[]>();
      const tagged: SSHPrincipal[] = [];
      for (const idx of [...src.nodes].sort((a, b) => a - b)) {
        const n = topo.nodes[idx];
        if (n.tagged) {
          for (let i = 0; i < n.tags.length; i++) tagged.push({ nodeIP: n.ipv4 }, { nodeIP: n.ipv6 });
          continue;
        }
        if (!n.user) continue;
        const l = userNodes.get(n.user.id) ?? [];
        l.push(n);
        userNodes.set(n.user.id, l);
      }
      const userIds = [...userNodes.keys()].sort((a, b) => a - b);
      const byUser = new Map(userIds.map((id) => [id, principals(userNodes.get(id)!)]));
      const others = rule.dst.filter((d) => !(d.kind === "autogroup" && d.name === "self"));
      const dst = others.length > 0 ? resolver.resolveAll(others).nodes : null;
      const hasSelf = rule.dst.some((d) => d.kind === "autogroup" && d.name === "self");
      const all = [...userIds.flatMap((uid) => byUser.get(uid)!), ...tagged];
      this.preps.push({ rule, index, src, action, baseUsers, localparts, userIds, byUser, tagged, all, dst, hasSelf });
    }
  }

  /**
   * What each compiled SSH rule depends on (for incremental compiles): source nodes,
   * destination nodes (null: only autogroup:self), whether it has autogroup:self
   * destinations and `localpart:` users. Rules with no source are absent.
   */
  deps(): { rule: SshRule; src: ReadonlySet<number>; dst: ReadonlySet<number> | null; hasSelf: boolean; localparts: boolean }[] {
    return this.preps.map((p) => ({ rule: p.rule, src: p.src.nodes, dst: p.dst, hasSelf: p.hasSelf, localparts: p.localparts !== null }));
  }

  /** The SSH rules node `n` receives, or undefined when the policy has no SSH rules for it. */
  rulesFor(n: NodeInfo): SSHRule[] {
    return this.#entries(n).map((e) => e.rule);
  }

  /**
   * The policy `ssh` rule behind the check-mode (HoldAndDelegate) rule destination `dst`
   * applies to a connection from `src` landing as `localUser`: the first such rule in the
   * order `dst` evaluates its rules (check rules first, as {@link rulesFor} emits them),
   * whose principals hold one of `src`'s addresses and whose user map can give
   * `localUser`. The compiler maps a login name only to itself (or `=`: the same name),
   * so the requested SSH user equals `localUser` and this is the rule `dst` matched.
   * null when no check rule lets `src` in as `localUser` (the server refuses the check).
   */
  checkRuleFor(src: NodeInfo, dst: NodeInfo, localUser: string): { index: number; rule: SshRule } | null {
    const addrs = new Set([src.ipv4, src.ipv6]);
    for (const e of this.#entries(dst)) {
      if (!e.rule.action.holdAndDelegate) continue;
      if (!e.rule.principals.some((p) => p.nodeIP !== undefined && addrs.has(p.nodeIP))) continue;
      if (!mapsTo(e.rule.sshUsers, localUser)) continue;
      return { index: e.prep.index, rule: e.prep.rule };
    }
    return null;
  }

  #entries(n: NodeInfo): { rule: SSHRule; prep: RulePrep }[] {
    const out: { rule: SSHRule; prep: RulePrep }[] = [];
    for (const p of this.preps) {
      const emit = (pr: SSHPrincipal[], uid: number | null): void => {
        if (pr.length === 0) return;
        const r: SSHRule = { principals: pr, sshUsers: p.baseUsers, action: p.action };
        if (p.rule.acceptEnv) r.acceptEnv = p.rule.acceptEnv;
        out.push({ rule: r, prep: p });
        const lp = uid !== null && p.localparts ? p.localparts.get(uid) : undefined;
        if (lp !== undefined) {
          const r2: SSHRule = { principals: pr, sshUsers: { [lp]: lp }, action: p.action };
          if (p.rule.acceptEnv) r2.acceptEnv = p.rule.acceptEnv;
          out.push({ rule: r2, prep: p });
        }
      };
      if (p.hasSelf && !n.tagged && n.user) {
        const pr = p.byUser.get(n.user.id);
        if (pr) emit(pr, n.user.id);
      }
      if (!p.dst) continue;
      if (p.dst.has(n.idx)) {
        if (p.localparts) {
          for (const uid of p.userIds) emit(p.byUser.get(uid)!, uid);
          emit(p.tagged, null);
        } else {
          emit(p.all, null);
        }
      } else if (p.localparts && p.src.nodes.has(n.idx)) {
        if (n.tagged) emit(principals([n]), null);
        else if (n.user) {
          const pr = p.byUser.get(n.user.id);
          if (pr) emit(pr, n.user.id);
        }
      }
    }
    const checks = out.filter((e) => e.rule.action.holdAndDelegate);
    const accepts = out.filter((e) => !e.rule.action.holdAndDelegate);
    return [...checks, ...accepts];
  }
}

/**
 * The action of an `accept` rule, and what a passed check answers: accept with agent,
 * local and remote port forwarding allowed (the policy file has no per-rule switches;
 * Tailscale's service sends the same).
 */
export function sshAcceptAction(): SSHAction {
  return { accept: true, allowAgentForwarding: true, allowLocalPortForwarding: true, allowRemotePortForwarding: true };
}

/** Whether a node applying `users` (Tailscale's user map: exact name, then `*`; `=` keeps the name but never root) can land as `local`. */
function mapsTo(users: Record<string, string>, local: string): boolean {
  if (local === "") return false;
  if (Object.prototype.hasOwnProperty.call(users, local)) return users[local] === local;
  for (const [k, v] of Object.entries(users)) if (k !== "*" && v === local) return true;
  return users["*"] === "=" && local !== "root";
}
