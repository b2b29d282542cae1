/** Lattice's embedded SSH server (Tailscale SSH): see server.ts. */
export { SshServer, type SshBackend, type SshServerOptions, type SshServerStats, type SockAddr } from "./server.js";
export { loadHostKeys, publicHostKeys, HostKeyError, type HostKey, type HostKeyOptions } from "./hostkeys.js";
export { evaluateSshPolicy, mapLocalUser, principalMatches, expandDelegateUrl, canonicalIp, type SshDecision, type SshConnIdentity } from "./policy.js";
export { runCheck, type CheckResult, type CheckDeps } from "./check.js";
