/** Pre-authentication keys: create, list, revoke, and validate-and-consume at registration. */
import type { Kysely, Selectable, Transaction } from "kysely";
import type { AuthKeysTable, Database } from "../db/schema.js";
import { AuthKeyError, NotFoundError, ValidationError } from "../errors.js";
import { parseJson, type ServiceContext } from "./context.js";
import { makeSecret, secretMatches, splitSecret } from "./secrets.js";
import { checkTagOwnership, normalizeTags } from "./tags.js";
import type { PolicyService } from "./policy.js";
import type { UserService } from "./users.js";
import { roleOf } from "./users.js";

const DAY = 24 * 3600_000;
/** Shortest allowed auth key lifetime. */
export const MIN_KEY_EXPIRY_MS = DAY;
/** Longest allowed auth key lifetime. */
export const MAX_KEY_EXPIRY_MS = 90 * DAY;

/** Options for a new auth key. */
export interface CreateAuthKeyInput {
  /** Owner (name or id); required unless tags are given. */
  user?: string | undefined;
  reusable?: boolean | undefined;
  ephemeral?: boolean | undefined;
  preapproved?: boolean | undefined;
  tags?: string[] | undefined;
  /** Lifetime in ms, 1 to 90 days (default 90 days). */
  expiryMs?: number | undefined;
  /** Who creates it (shown in key lists). */
  createdBy?: string | undefined;
}

/** An auth key as the API shows it (never the secret). */
export interface AuthKeyView {
  id: number;
  prefix: string;
  user: string | null;
  reusable: boolean;
  ephemeral: boolean;
  preapproved: boolean;
  tags: string[];
  createdAt: string;
  expiresAt: string;
  revoked: boolean;
  used: number;
  /** Who created it (login name, `admin-socket`, `api-key <prefix>`), null when not recorded. */
  createdBy: string | null;
}

type Row = Selectable<AuthKeysTable> & { user_name?: string | null };

function view(r: Row): AuthKeyView {
  return {
    id: r.id,
    prefix: r.prefix,
    user: r.user_name ?? null,
    reusable: !!r.reusable,
    ephemeral: !!r.ephemeral,
    preapproved: !!r.preapproved,
    tags: parseJson<string[]>(r.tags, []),
    createdAt: new Date(r.created_at).toISOString(),
    expiresAt: new Date(r.expires_at).toISOString(),
    revoked: r.revoked_at != null,
    used: r.used_count,
    createdBy: r.created_by ?? null,
  };
}

/** Auth key management. */
export class AuthKeyService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly users: UserService,
    private readonly policies: PolicyService,
  ) {}

  /** Creates a key; returns the full secret (shown once) and its record. */
  async create(input: CreateAuthKeyInput): Promise<{ key: string; authKey: AuthKeyView }> {
    const tags = normalizeTags(input.tags ?? []);
    const expiryMs = input.expiryMs ?? MAX_KEY_EXPIRY_MS;
    if (!Number.isFinite(expiryMs) || expiryMs < MIN_KEY_EXPIRY_MS || expiryMs > MAX_KEY_EXPIRY_MS) {
      throw new ValidationError("expiry: must be between 1 day (24h) and 90 days (2160h)");
    }
    const user = input.user !== undefined ? await this.users.get(input.user) : undefined;
    if (!user && tags.length === 0) throw new ValidationError("user: an auth key needs a user or tags (a node is owned by a user or tagged)");
    if (tags.length > 0) {
      const { policy } = await this.policies.current();
      checkTagOwnership(policy, tags, user ? { admin: false, user: { ...user, role: roleOf(user) } } : { admin: true });
    }
    const secret = makeSecret("lkey", this.ctx.random);
    const now = this.ctx.now();
    const row = await this.ctx.db.kysely
      .insertInto("auth_keys")
      .values({
        prefix: secret.prefix,
        hash: secret.hash,
        user_id: user?.id ?? null,
        reusable: input.reusable ? 1 : 0,
        ephemeral: input.ephemeral ? 1 : 0,
        preapproved: input.preapproved ? 1 : 0,
        tags: JSON.stringify(tags),
        created_at: now,
        expires_at: now + expiryMs,
        revoked_at: null,
        used_count: 0,
        created_by: input.createdBy ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { key: secret.full, authKey: view({ ...row, user_name: user?.name ?? null }) };
  }

  /** All keys, newest last. */
  async list(): Promise<AuthKeyView[]> {
    const rows = await this.ctx.db.kysely
      .selectFrom("auth_keys")
      .leftJoin("users", "users.id", "auth_keys.user_id")
      .selectAll("auth_keys")
      .select("users.name as user_name")
      .orderBy("auth_keys.id")
      .execute();
    return rows.map(view);
  }

  /** Revokes a key by id or prefix. */
  async revoke(idOrPrefix: string): Promise<AuthKeyView> {
    const db = this.ctx.db.kysely;
    const row = await this.find(db, idOrPrefix);
    if (row.revoked_at == null) {
      await db.updateTable("auth_keys").set({ revoked_at: this.ctx.now() }).where("id", "=", row.id).execute();
    }
    return view({ ...row, revoked_at: row.revoked_at ?? this.ctx.now() });
  }

  /**
   * Finds a key by id, by its prefix (any unambiguous leading part, at least 4 hex
   * digits; a number is an id first), or by the whole key text (`lkey-<prefix>-…`).
   * @throws {NotFoundError}, {@link ValidationError} when a prefix matches several keys.
   */
  private async find(db: Kysely<Database>, idOrPrefix: string): Promise<Row> {
    const key = idOrPrefix.startsWith("lkey-") ? (idOrPrefix.split("-")[1] ?? "") : idOrPrefix;
    const base = () => db.selectFrom("auth_keys").leftJoin("users", "users.id", "auth_keys.user_id").selectAll("auth_keys").select("users.name as user_name");
    if (/^\d+$/.test(key) && key.length < 12) {
      const byId = await base().where("auth_keys.id", "=", Number(key)).executeTakeFirst();
      if (byId) return byId;
    }
    if (/^[0-9a-f]{4,12}$/.test(key)) {
      const rows = await base().where("auth_keys.prefix", "like", `${key}%`).limit(2).execute();
      if (rows.length > 1) throw new ValidationError(`key prefix ${JSON.stringify(key)} matches several keys; give more of it`);
      if (rows[0]) return rows[0];
    }
    throw new NotFoundError("auth_key", idOrPrefix);
  }

  /** One key by id or prefix (see find). */
  async get(idOrPrefix: string): Promise<AuthKeyView> {
    return view(await this.find(this.ctx.db.kysely, idOrPrefix));
  }

  /** Deletes a key (revoked or not); nodes registered with it keep working. Returns what was deleted. */
  async delete(idOrPrefix: string): Promise<AuthKeyView> {
    const row = await this.find(this.ctx.db.kysely, idOrPrefix);
    await this.ctx.db.kysely.deleteFrom("auth_keys").where("id", "=", row.id).execute();
    return view(row);
  }

  /**
   * Validates a presented key inside a registration transaction and counts one use.
   * Throws AuthKeyError (unknown, expired, revoked, already used).
   */
  async consume(tx: Transaction<Database>, presented: string): Promise<Row> {
    const parts = splitSecret("lkey", presented);
    if (!parts) throw new AuthKeyError("auth_key_invalid", "auth key is malformed or unknown");
    const row = await tx.selectFrom("auth_keys").selectAll().where("prefix", "=", parts.prefix).executeTakeFirst();
    if (!row || !secretMatches(parts.secret, row.hash)) throw new AuthKeyError("auth_key_invalid", "auth key is malformed or unknown");
    if (row.revoked_at != null) throw new AuthKeyError("auth_key_revoked", `auth key ${row.prefix} has been revoked`);
    if (row.expires_at <= this.ctx.now()) {
      throw new AuthKeyError("auth_key_expired", `auth key ${row.prefix} expired at ${new Date(row.expires_at).toISOString()}`);
    }
    if (!row.reusable && row.used_count > 0) throw new AuthKeyError("auth_key_used", `auth key ${row.prefix} is single-use and has already been used`);
    const res = await tx
      .updateTable("auth_keys")
      .set({ used_count: row.used_count + 1 })
      .where("id", "=", row.id)
      .where("used_count", "=", row.used_count)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new AuthKeyError("auth_key_used", `auth key ${row.prefix} is single-use and has already been used`);
    return row;
  }
}
