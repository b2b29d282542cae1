/**
 * Schema migrations, shared by SQLite and PostgreSQL. Each migration is applied once,
 * inside a transaction, and recorded in Kysely's migration table.
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from "kysely";
import type { Database } from "./schema.js";

/** Which SQL engine a database uses. */
export type DbKind = "sqlite" | "postgres";

function idColumn(kind: DbKind) {
  return kind === "sqlite" ? ("integer" as const) : ("serial" as const);
}

function initial(kind: DbKind): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      const id = idColumn(kind);
      const pk = (c: any) => (kind === "sqlite" ? c.primaryKey().autoIncrement() : c.primaryKey());
      await db.schema
        .createTable("users")
        .addColumn("id", id, pk)
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("email", "text")
        .addColumn("display_name", "text")
        .addColumn("password_hash", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("auth_keys")
        .addColumn("id", id, pk)
        .addColumn("prefix", "text", (c) => c.notNull().unique())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("user_id", "integer", (c) => c.references("users.id").onDelete("cascade"))
        .addColumn("reusable", "integer", (c) => c.notNull())
        .addColumn("ephemeral", "integer", (c) => c.notNull())
        .addColumn("preapproved", "integer", (c) => c.notNull())
        .addColumn("tags", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint")
        .addColumn("used_count", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable("nodes")
        .addColumn("id", id, pk)
        .addColumn("machine_key", "text", (c) => c.notNull().unique())
        .addColumn("node_key", "text", (c) => c.notNull().unique())
        .addColumn("disco_key", "text", (c) => c.notNull())
        .addColumn("hostname", "text", (c) => c.notNull())
        .addColumn("given_name", "text", (c) => c.notNull().unique())
        .addColumn("user_id", "integer", (c) => c.references("users.id"))
        .addColumn("tags", "text", (c) => c.notNull())
        .addColumn("ipv4", "text", (c) => c.notNull().unique())
        .addColumn("ipv6", "text", (c) => c.notNull().unique())
        .addColumn("hostinfo", "text", (c) => c.notNull())
        .addColumn("endpoints", "text", (c) => c.notNull())
        .addColumn("home_derp", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("approved_routes", "text", (c) => c.notNull())
        .addColumn("approved", "integer", (c) => c.notNull())
        .addColumn("key_expiry", "bigint")
        .addColumn("expiry_disabled", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("ephemeral", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("auth_key_id", "integer", (c) => c.references("auth_keys.id").onDelete("set null"))
        .addColumn("last_seen", "bigint")
        .addColumn("online", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("policies")
        .addColumn("id", id, pk)
        .addColumn("text", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("api_keys")
        .addColumn("id", id, pk)
        .addColumn("prefix", "text", (c) => c.notNull().unique())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("description", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint")
        .addColumn("last_used", "bigint")
        .execute();
      await db.schema
        .createTable("web_sessions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "integer", (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("pending_registrations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("machine_key", "text", (c) => c.notNull())
        .addColumn("node_key", "text", (c) => c.notNull())
        .addColumn("request", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("user_id", "integer", (c) => c.references("users.id").onDelete("cascade"))
        .addColumn("node_id", "integer")
        .addColumn("completed_at", "bigint")
        .execute();
      await db.schema
        .createTable("settings")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("nodes_user_idx").on("nodes").column("user_id").execute();
      await db.schema.createIndex("pending_machine_idx").on("pending_registrations").column("machine_key").execute();
    },
  };
}

/** Adds the OIDC identity (issuer + subject) of users who log in with OIDC. */
function oidcIdentity(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable("users").addColumn("oidc_issuer", "text").execute();
      await db.schema.alterTable("users").addColumn("oidc_subject", "text").execute();
      await db.schema.createIndex("users_oidc_idx").on("users").columns(["oidc_issuer", "oidc_subject"]).unique().execute();
    },
  };
}

/**
 * Records where an interactive registration came from (the node's source address, IPv6
 * grouped by /64), so pending registrations can be capped per source.
 */
function registrationSource(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable("pending_registrations").addColumn("source", "text").execute();
      await db.schema.createIndex("pending_source_idx").on("pending_registrations").column("source").execute();
      await db.schema.createIndex("pending_expires_idx").on("pending_registrations").column("expires_at").execute();
    },
  };
}

/**
 * Identity rules (issue 6, A4/A8/B4):
 * - `users.role` ('owner' | 'admin' | 'member', default 'member'). Existing users: the
 *   first created (lowest id) becomes the owner, everyone else a member — Tailscale's
 *   default for people who join a tailnet; promote admins with `users set-role`.
 *   A partial unique index allows at most one owner.
 * - E-mail addresses are unique case-insensitively (unique index on lower(email)).
 *   Existing duplicates: the earliest-created user keeps the address; later users with the
 *   same address (any case) lose it (email set to NULL, so their login name becomes
 *   `name@` and they stop matching policies that name the address).
 * - `api_keys.user_id`: the user an API key acts for (null: created over the admin socket,
 *   acts as an administrator). Deleting the user deletes their keys.
 */
function identityRules(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable("users").addColumn("role", "text", (c) => c.notNull().defaultTo("member")).execute();
      await sql`UPDATE users SET role = 'owner' WHERE id = (SELECT min(id) FROM users)`.execute(db);
      await sql`UPDATE users SET email = NULL WHERE email IS NOT NULL AND EXISTS (
        SELECT 1 FROM users AS earlier WHERE lower(earlier.email) = lower(users.email) AND earlier.id < users.id)`.execute(db);
      await db.schema.createIndex("users_email_lower_idx").on("users").expression(sql`lower(email)`).unique().execute();
      await db.schema.createIndex("users_name_lower_idx").on("users").expression(sql`lower(name)`).unique().execute();
      await db.schema.createIndex("users_one_owner_idx").on("users").column("role").unique().where(sql.ref("role"), "=", "owner").execute();
      await db.schema.alterTable("api_keys").addColumn("user_id", "integer", (c) => c.references("users.id").onDelete("cascade")).execute();
    },
  };
}

/** The audit log of administrative changes (issue 11): who, when, what, from where. */
function auditLog(kind: DbKind): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      const id = idColumn(kind);
      await db.schema
        .createTable("audit_log")
        .addColumn("id", id, (c: any) => (kind === "sqlite" ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn("at", "bigint", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("actor_user_id", "integer")
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("target", "text", (c) => c.notNull())
        .addColumn("source", "text", (c) => c.notNull())
        .addColumn("details", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("audit_log_at_idx").on("audit_log").column("at").execute();
      await db.schema.alterTable("auth_keys").addColumn("created_by", "text").execute();
    },
  };
}

/**
 * SSH check mode (issue 9): `ssh_checks` holds each check a node delegated (pending until
 * the source user approves or denies it on `/ssh/check/<id>`, or it expires);
 * `ssh_approvals` the last approval per (user, destination node, rule, local user), which
 * spares new checks within the rule's checkPeriod. Both go with their node or user.
 */
function sshChecks(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable("ssh_checks")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("src_node_id", "integer", (c) => c.notNull().references("nodes.id").onDelete("cascade"))
        .addColumn("dst_node_id", "integer", (c) => c.notNull().references("nodes.id").onDelete("cascade"))
        .addColumn("user_id", "integer", (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("local_user", "text", (c) => c.notNull())
        .addColumn("rule_key", "text", (c) => c.notNull())
        .addColumn("rule_index", "integer", (c) => c.notNull())
        .addColumn("check_period", "bigint", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("decided_at", "bigint")
        .execute();
      await db.schema.createIndex("ssh_checks_dst_idx").on("ssh_checks").columns(["dst_node_id", "status", "expires_at"]).execute();
      await db.schema.createIndex("ssh_checks_src_idx").on("ssh_checks").column("src_node_id").execute();
      await db.schema.createIndex("ssh_checks_user_idx").on("ssh_checks").column("user_id").execute();
      await db.schema
        .createTable("ssh_approvals")
        .addColumn("user_id", "integer", (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("dst_node_id", "integer", (c) => c.notNull().references("nodes.id").onDelete("cascade"))
        .addColumn("rule_key", "text", (c) => c.notNull())
        .addColumn("local_user", "text", (c) => c.notNull())
        .addColumn("approved_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("ssh_approvals_pk", ["user_id", "dst_node_id", "rule_key", "local_user"])
        .execute();
      await db.schema.createIndex("ssh_approvals_dst_idx").on("ssh_approvals").column("dst_node_id").execute();
    },
  };
}

/** Every migration by name (applied in name order); exported for upgrade tests. */
export function migrationsFor(kind: DbKind): Record<string, Migration> {
  return {
    "0001_initial": initial(kind),
    "0002_oidc_identity": oidcIdentity(),
    "0003_registration_source": registrationSource(),
    "0004_identity_rules": identityRules(),
    "0005_audit_log": auditLog(kind),
    "0006_ssh_checks": sshChecks(),
  };
}

/** Applies every pending migration; throws with the failing migration's error. */
export async function migrate(db: Kysely<Database>, kind: DbKind): Promise<void> {
  const provider: MigrationProvider = {
    async getMigrations() {
      return migrationsFor(kind);
    },
  };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error");
    throw new Error(`database migration ${failed?.migrationName ?? "?"} failed: ${String((error as Error).message ?? error)}`);
  }
}
