/** @lattice/policy: Tailscale policy file parser and compiler. */
export { PolicyError, type PolicyErrorCode, type Pos } from "./errors.js";
export { parsePolicy } from "./parse.js";
export type { Policy, Grant, SshRule, Alias, PolicyTest, SshTest, NodeAttr, PortRange, ProtoPorts } from "./model.js";
export type { Topology, TopologyNode, TopologyUser } from "./topology.js";
export { compilePolicy, compilePolicyCompact, type CompileOptions } from "./compile.js";
export { allowedFor, expandCompiled, type CompactNode, type CompactPeers, type CompiledPolicy, type NodeCompiled } from "./compiled.js";
export { compileFiles } from "./files.js";
export { sortedHas } from "./peers.js";
export { IncrementalCompiler, type IncrementalResult } from "./incremental.js";
export { applyAutoApprovers, autoApprovedRoutes } from "./autoapprove.js";
export { loginName, identityKey, sameIdentity, userMatchesToken, userTokenProblems, isUserRole, isAdminRole, USER_ROLES, type UserRole } from "./identity.js";
export { explainAccess, type AccessVerdict } from "./explain.js";
export { SshCheckIndex, sshRuleKey, DEFAULT_SSH_CHECK_PERIOD_SEC, type SshCheckRule } from "./ssh-check.js";
export { sshAcceptAction, SSH_CHECK_PATH } from "./ssh.js";
