/** The parsed, validated policy model (Tailscale policy file semantics). */
import type { Pos } from "./errors.js";
import type { IPRange } from "./ip.js";

/** Autogroups the policy language knows. */
export type AutoGroupName = "member" | "tagged" | "self" | "internet" | "danger-all" | "nonroot" | "admin" | "owner";

/** One alias of a src/dst/target list, with where it was written. */
export type Alias = (
  | { kind: "wildcard" }
  | { kind: "user"; name: string }
  | { kind: "userDomain"; domain: string }
  | { kind: "group"; name: string }
  | { kind: "tag"; name: string }
  | { kind: "host"; name: string }
  | { kind: "prefix"; range: IPRange }
  | { kind: "ipset"; name: string }
  | { kind: "autogroup"; name: AutoGroupName }
) & {
  text: string;
  pos: Pos;
  /** Path of the field it was written in, e.g. `ssh[2].dst[0]`. */
  field?: string;
};

/** A port range, inclusive. */
export interface PortRange {
  /** First port. */
  First: number;
  /** Last port. */
  Last: number;
}

/** The network part of a grant: protocols (null = Tailscale's default set) and ports. */
export interface ProtoPorts {
  /** IANA protocol numbers, or null for the default (TCP, UDP, ICMP). */
  proto: number[] | null;
  /** Port ranges. */
  ports: PortRange[];
}

/** A grant (ACLs are normalized to grants, one per destination). */
export interface Grant {
  /** Sources. */
  src: Alias[];
  /** Destinations. */
  dst: Alias[];
  /** Network capabilities; empty when the grant is app-only. */
  ip: ProtoPorts[];
  /** Application capabilities (name → values), or null. */
  app: Record<string, unknown[]> | null;
  /** Via tags (route through these routers). */
  via: string[];
  /** Where the rule was written. */
  pos: Pos;
}

/** One SSH rule. */
export interface SshRule {
  /** accept or check. */
  action: "accept" | "check";
  /** Sources. */
  src: Alias[];
  /** Destinations. */
  dst: Alias[];
  /** Login users as written (root, autogroup:nonroot, localpart:*@domain, names). */
  users: string[];
  /** Where each entry of `users` was written. */
  usersPos: Pos[];
  /** Check period in seconds; "always" → 0; undefined when not given. */
  checkPeriod?: number;
  /** Accepted environment variable globs. */
  acceptEnv?: string[];
  /** Where the rule was written. */
  pos: Pos;
}

/** One entry of the `tests` block. */
export interface PolicyTest {
  /** Source alias (raw). */
  src: string;
  /** Protocol (raw) or undefined. */
  proto?: string;
  /** Destinations that must be allowed ("alias:port"). */
  accept: string[];
  /** Destinations that must be denied. */
  deny: string[];
  /** Where the test was written. */
  pos: Pos;
  /** Field path of the test ("tests[3]"). */
  field?: string;
  /** Where each `accept` / `deny` entry was written. */
  acceptPos?: Pos[];
  denyPos?: Pos[];
}

/** One entry of the `sshTests` block. */
export interface SshTest {
  /** Source alias (raw). */
  src: string;
  /** Destination aliases (raw). */
  dst: string[];
  /** Users that must be accepted. */
  accept: string[];
  /** Users that must get check mode. */
  check: string[];
  /** Users that must be denied. */
  deny: string[];
  /** Where the test was written. */
  pos: Pos;
}

/** One nodeAttrs entry. */
export interface NodeAttr {
  /** Targets. */
  target: Alias[];
  /** Attributes granted. */
  attr: string[];
  /** Where it was written. */
  pos: Pos;
}

/** A parsed policy. */
export interface Policy {
  /** true when the policy has neither `acls` nor `grants` (→ allow all). */
  allowAll: boolean;
  /** All grants, ACL rules converted, in policy order (grants first, then acls). */
  grants: Grant[];
  /** SSH rules; null when absent. */
  ssh: SshRule[] | null;
  /** group name → member usernames. */
  groups: Map<string, string[]>;
  /** tag → owners. */
  tagOwners: Map<string, string[]>;
  /** host name → range. */
  hosts: Map<string, IPRange>;
  /** IP set name ("ipset:x") → its addresses (adds minus removes) and whether it was built from autogroup:internet. */
  ipsets: Map<string, { ranges: IPRange[]; internet: boolean }>;
  /** autoApprovers.routes: prefix → approvers. */
  autoApproverRoutes: Map<string, Alias[]>;
  /** autoApprovers.exitNode. */
  autoApproverExit: Alias[];
  /** nodeAttrs. */
  nodeAttrs: NodeAttr[];
  /** randomizeClientPort. */
  randomizeClientPort: boolean;
  /** tests. */
  tests: PolicyTest[];
  /** sshTests. */
  sshTests: SshTest[];
}
