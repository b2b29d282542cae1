/**
 * Tailscale SSH policy evaluation (pure): which rule of a node's SSHPolicy applies to a
 * connection, which local user it maps to, and what to tell the client when it is denied.
 *
 * Semantics follow tailscale/tailscale ssh/tailssh/tailssh.go (evalSSHPolicy, matchRule,
 * principalMatchesTailscaleIdentity, mapLocalUser):
 * - rules are tried in order; the first rule whose principals AND user map match wins;
 * - a rule without an action, or whose `ruleExpires` lies in the past, never matches;
 * - principals: `any`, `node` (StableNodeID), `nodeIP` (the source address), `userLogin`
 *   (the source user's login name; never matches a tagged node);
 * - sshUsers: the requested name exactly, else "*"; "=" keeps the requested name, "" denies;
 *   Lattice adds that "=" never yields root (autogroup:nonroot semantics even when a
 *   compiler forgot the explicit `"root": ""`).
 */
import type { Node, SSHAction, SSHPolicy, SSHPrincipal, SSHRule, UserProfile } from "@lattice/types";
import { formatIp, parseIp } from "@lattice/netaddr";

/** Who is connecting and as whom, as known when the client first asks to authenticate. */
export interface SshConnIdentity {
  /** The connection's source address (the WireGuard peer's tailnet IP). */
  srcIp: string;
  /** The peer node owning `srcIp` (cryptokey routing). */
  srcNode: Node;
  /** The peer's user profile; null for tagged nodes. */
  srcUser: UserProfile | null;
  /** This node. */
  dstNode: Node;
  /** The user name the client asked for ("root" in `ssh root@host`). */
  sshUser: string;
}

/** The outcome of evaluating a policy for one connection. */
export type SshDecision =
  | { kind: "accept"; rule: number; localUser: string; action: SSHAction; acceptEnv: string[] }
  | { kind: "hold"; rule: number; localUser: string; action: SSHAction; acceptEnv: string[] }
  | { kind: "reject"; rule: number | null; message: string };

/**
 * The canonical text of an IP address: v4-mapped IPv6 ("::ffff:1.2.3.4") becomes IPv4,
 * IPv6 is lower-case and compressed. Unparseable input is returned unchanged (so it can
 * only ever equal itself). The ONE function by which addresses are compared here.
 */
export function canonicalIp(text: string): string {
  const p = parseIp(text.replace(/^\[|\]$/g, ""));
  if (!p) return text;
  const b = p.bytes;
  if (b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
    return formatIp(b.subarray(12));
  }
  return formatIp(b);
}

/** The host name users see for a node: the first label of its MagicDNS name. */
export function shortName(node: Node): string {
  const n = node.Name.replace(/\.$/, "");
  const dot = n.indexOf(".");
  return dot > 0 ? n.slice(0, dot) : n || String(node.ID);
}

/** How a source is named in messages and logs: the user's login, or the tagged node's name and tags. */
export function describeSource(srcNode: Node, srcUser: UserProfile | null): string {
  if (isTagged(srcNode) || !srcUser) {
    const tags = srcNode.Tags?.length ? ` (${srcNode.Tags.join(",")})` : "";
    return `tagged node ${shortName(srcNode)}${tags}`;
  }
  return srcUser.LoginName;
}

/** True when the node is owned by tags (cannot log in interactively). */
export function isTagged(node: Node): boolean {
  return (node.Tags?.length ?? 0) > 0;
}

/** Whether `p` names the connecting identity. */
export function principalMatches(p: SSHPrincipal, id: SshConnIdentity): boolean {
  if (p.any) return true;
  if (p.node !== undefined && p.node !== "" && p.node === id.srcNode.StableID) return true;
  if (p.nodeIP !== undefined && p.nodeIP !== "" && canonicalIp(p.nodeIP) === canonicalIp(id.srcIp)) return true;
  if (p.userLogin !== undefined && p.userLogin !== "" && id.srcUser && !isTagged(id.srcNode)) {
    if (p.userLogin === id.srcUser.LoginName) return true;
  }
  return false;
}

/**
 * The local user `sshUsers` maps `requested` to, or "" when denied: exact key, else "*";
 * "=" keeps the requested name except for root.
 */
export function mapLocalUser(sshUsers: Record<string, string>, requested: string): string {
  const v = Object.prototype.hasOwnProperty.call(sshUsers, requested) ? sshUsers[requested] : sshUsers["*"];
  if (v === undefined) return "";
  if (v === "=") return requested === "root" ? "" : requested;
  return v;
}

/** True when `rule.ruleExpires` (RFC 3339 or Unix seconds) is at or before `now`. */
export function ruleExpired(rule: SSHRule, now: Date): boolean {
  const e = rule.ruleExpires;
  if (e === undefined || e === null || e === "") return false;
  const ms = /^\d+(\.\d+)?$/.test(e) ? Number(e) * 1000 : Date.parse(e);
  // An unreadable expiry fails closed: the rule no longer grants anything.
  if (!Number.isFinite(ms)) return true;
  return ms <= now.getTime();
}

/**
 * Evaluates `policy` for one connection at time `now`.
 * Returns accept/hold with the mapped local user, or reject with the reason to show the
 * client (policy absent, no rule for the source, no rule for the user, or the rule's
 * Reject message).
 */
export function evaluateSshPolicy(policy: SSHPolicy | undefined, id: SshConnIdentity, now: Date): SshDecision {
  const who = describeSource(id.srcNode, id.srcUser);
  const host = shortName(id.dstNode);
  const rules = policy?.rules ?? [];
  let principalMatched = false;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i];
    if (!rule || !rule.action || ruleExpired(rule, now)) continue;
    if (!(rule.principals ?? []).some((p) => principalMatches(p, id))) continue;
    principalMatched = true;
    const localUser = mapLocalUser(rule.sshUsers ?? {}, id.sshUser);
    if (localUser === "") continue;
    const action = rule.action;
    if (action.reject) {
      return { kind: "reject", rule: i, message: action.message || `access to ${host} as ${id.sshUser} denied for ${who} by tailnet policy` };
    }
    const acceptEnv = rule.acceptEnv ?? [];
    if (action.accept) return { kind: "accept", rule: i, localUser, action, acceptEnv };
    if (action.holdAndDelegate) return { kind: "hold", rule: i, localUser, action, acceptEnv };
    // An action that neither accepts, rejects nor delegates grants nothing (fail closed).
    return { kind: "reject", rule: i, message: `tailnet policy rule ${i} for ${who} on ${host} has no usable action` };
  }
  const message = principalMatched
    ? `tailnet policy does not permit ${who} to SSH as ${id.sshUser} on ${host}`
    : `tailnet policy does not permit ${who} to SSH to ${host}`;
  return { kind: "reject", rule: null, message };
}

/**
 * Expands the check-mode URL variables ($SRC_NODE_IP, $SRC_NODE_ID, $DST_NODE_IP,
 * $DST_NODE_ID, $SSH_USER, $LOCAL_USER), each query-escaped (Tailscale's expandDelegateURL).
 */
export function expandDelegateUrl(
  url: string,
  v: { srcIp: string; srcNodeId: number | string; dstIp: string; dstNodeId: number | string; sshUser: string; localUser: string },
): string {
  const map: Record<string, string> = {
    SRC_NODE_IP: canonicalIp(v.srcIp),
    SRC_NODE_ID: String(v.srcNodeId),
    DST_NODE_IP: canonicalIp(v.dstIp),
    DST_NODE_ID: String(v.dstNodeId),
    SSH_USER: v.sshUser,
    LOCAL_USER: v.localUser,
  };
  return url.replace(/\$(SRC_NODE_IP|SRC_NODE_ID|DST_NODE_IP|DST_NODE_ID|SSH_USER|LOCAL_USER)/g, (_, k: string) => encodeURIComponent(map[k] ?? ""));
}

/** Whether an environment variable name matches one of the rule's AcceptEnv globs ("*", "?"). */
export function envAccepted(name: string, globs: readonly string[]): boolean {
  return globs.some((g) => {
    const re = new RegExp("^" + g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
    return re.test(name);
  });
}
