/**
 * Kysely table types for the coordination database. One schema serves SQLite and
 * PostgreSQL: timestamps are integer milliseconds since the epoch, booleans are
 * integers 0/1, lists and objects are JSON text.
 */
import type { Generated, Selectable } from "kysely";

/** Local user accounts. */
export interface UsersTable {
  id: Generated<number>;
  name: string;
  email: string | null;
  display_name: string | null;
  /** `scrypt$N$r$p$salt$hash` (base64url parts) or null for accounts without a password. */
  password_hash: string | null;
  created_at: number;
  /** Issuer URL of the user's OIDC identity (null for local-only accounts). */
  oidc_issuer: Generated<string | null>;
  /** OIDC `sub` claim, unique together with the issuer. */
  oidc_subject: Generated<string | null>;
  /** 'owner' (at most one), 'admin' or 'member'; see @lattice/policy identity.ts. */
  role: Generated<string>;
}

/** Pre-authentication keys, stored as SHA-256 of the secret, found by a public prefix. */
export interface AuthKeysTable {
  id: Generated<number>;
  prefix: string;
  hash: string;
  user_id: number | null;
  reusable: number;
  ephemeral: number;
  preapproved: number;
  /** JSON array of tags. */
  tags: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  used_count: number;
  /** Who created it (audit actor: login name, `admin-socket`, `api-key <prefix>`); null for keys from before it was recorded. */
  created_by: Generated<string | null>;
}

/** Registered machines. */
export interface NodesTable {
  id: Generated<number>;
  machine_key: string;
  node_key: string;
  disco_key: string;
  hostname: string;
  given_name: string;
  user_id: number | null;
  /** JSON array of tags; a node with tags is not owned by a user. */
  tags: string;
  ipv4: string;
  ipv6: string;
  /** JSON object (tailcfg Hostinfo). */
  hostinfo: string;
  /** JSON array of "ip:port" strings. */
  endpoints: string;
  home_derp: number;
  /** JSON array of approved subnet routes. */
  approved_routes: string;
  approved: number;
  key_expiry: number | null;
  expiry_disabled: number;
  ephemeral: number;
  auth_key_id: number | null;
  last_seen: number | null;
  online: number;
  created_at: number;
  updated_at: number;
}

/** Policy versions; the highest id is current. */
export interface PoliciesTable {
  id: Generated<number>;
  text: string;
  created_at: number;
}

/** API keys for the REST API (SHA-256 of the secret, found by prefix). */
export interface ApiKeysTable {
  id: Generated<number>;
  prefix: string;
  hash: string;
  description: string | null;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  last_used: number | null;
  /** The user the key acts for (null: created over the admin socket, acts as an admin). */
  user_id: Generated<number | null>;
}

/** Web login sessions (the cookie carries the id, signed). */
export interface WebSessionsTable {
  id: string;
  user_id: number;
  created_at: number;
  expires_at: number;
}

/** Interactive registrations waiting for a person to log in and confirm. */
export interface PendingRegistrationsTable {
  id: string;
  machine_key: string;
  node_key: string;
  /** JSON: the register request details the node sent (hostinfo, ephemeral...). */
  request: string;
  created_at: number;
  expires_at: number;
  user_id: number | null;
  node_id: number | null;
  completed_at: number | null;
  /** Where the registration came from ("ip" or "v6prefix/64"); null for rows from before it was recorded. */
  source: string | null;
}

/** SSH checks delegated by nodes (check mode), pending until decided or expired. */
export interface SshChecksTable {
  /** Random id (22 base64url characters), in the approval page's and the wait URL's path. */
  id: string;
  src_node_id: number;
  /** The node that asked (the SSH server); only it may wait on the check. */
  dst_node_id: number;
  /** The source node's owner: the only person who may decide. */
  user_id: number;
  local_user: string;
  /** The rule's content key (`sshRuleKey`, SHA-256 hex). */
  rule_key: string;
  /** The rule's position in the policy's `ssh` list when the check was made (for display). */
  rule_index: number;
  /** The rule's checkPeriod, ms (0 = always). */
  check_period: number;
  /** "pending" | "approved" | "denied". */
  status: string;
  created_at: number;
  expires_at: number;
  decided_at: number | null;
}

/** The last SSH check approval per (user, destination node, rule, local user). */
export interface SshApprovalsTable {
  user_id: number;
  dst_node_id: number;
  rule_key: string;
  local_user: string;
  approved_at: number;
}

/** Key/value settings (tailnet domain, cookie signing secret). */
export interface SettingsTable {
  key: string;
  value: string;
}

/** Audit log: one row per administrative change (see services/audit.ts). */
export interface AuditLogTable {
  id: Generated<number>;
  /** When, ms since the epoch. */
  at: number;
  /** Who: a login name, `admin-socket`, or `api-key <prefix>`. */
  actor: string;
  /** The acting user's id, when a user acted. */
  actor_user_id: number | null;
  /** What, e.g. `node.approve`, `policy.set`, `authkey.create`. */
  action: string;
  /** What it was done to (node name, user name, key prefix…), or "" */
  target: string;
  /** From where: the client address, or `admin-socket`. */
  source: string;
  /** JSON object with details (for policy changes: `diff`, the old→new unified diff). */
  details: string;
}

/** The whole database. */
export interface Database {
  users: UsersTable;
  auth_keys: AuthKeysTable;
  nodes: NodesTable;
  policies: PoliciesTable;
  api_keys: ApiKeysTable;
  web_sessions: WebSessionsTable;
  pending_registrations: PendingRegistrationsTable;
  settings: SettingsTable;
  audit_log: AuditLogTable;
  ssh_checks: SshChecksTable;
  ssh_approvals: SshApprovalsTable;
}

/** A user row as read from the database. */
export type UserRow = Selectable<UsersTable>;

/** A node row as read from the database. */
export type NodeRow = Selectable<NodesTable>;
