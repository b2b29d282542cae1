/**
 * API keys for the REST API (`Authorization: Bearer lapi-...`), stored hashed.
 *
 * The REST API administers the tailnet, so a key acts with an administrator's rights:
 * a key created over the admin socket without `--user` is an admin key; a key created
 * for a user (`apikeys create --user NAME`, or over REST with a key of that user)
 * carries that user's CURRENT role — it works only while the user is an owner or admin
 * (403 otherwise) and is deleted with the user (Tailscale: API access tokens belong to
 * the user who made them and need an admin role).
 */
import { isAdminRole } from "@lattice/policy";
import { ForbiddenError, NotFoundError, UnauthorizedError, ValidationError } from "../errors.js";
import type { ServiceContext } from "./context.js";
import { makeSecret, secretMatches, splitSecret } from "./secrets.js";
import { roleOf } from "./users.js";

/** Who an authenticated REST request acts for: null user = an admin key (or the admin socket). */
export interface ApiPrincipal {
  /** The user the key belongs to, or null for admin keys / the admin socket. */
  userId: number | null;
}

/** The admin socket's principal: trusted by file permissions, acts as an administrator. */
export const SOCKET_PRINCIPAL: ApiPrincipal = Object.freeze({ userId: null });

/** An API key as listed (never the secret). */
export interface ApiKeyView {
  id: number;
  prefix: string;
  description: string | null;
  createdAt: string;
  expiresAt: string;
  revoked: boolean;
  lastUsed: string | null;
  /** The user the key acts for (null: an admin key). */
  user: string | null;
}

const DAY = 24 * 3600_000;

/** API key management and verification. */
export class ApiKeyService {
  constructor(private readonly ctx: ServiceContext) {}

  /**
   * Creates a key valid for `expiryMs` (1 to 365 days, default 90); returns the secret once.
   * `user` (name or id) binds the key to that user, who must be an owner or admin
   * (ForbiddenError otherwise); `creator` is who asks: a user-bound caller's keys are bound
   * to the same user (a key never has more rights than its creator).
   */
  async create(description?: string, expiryMs = 90 * DAY, user?: string, creator: ApiPrincipal = SOCKET_PRINCIPAL): Promise<{ key: string; apiKey: ApiKeyView }> {
    if (!Number.isFinite(expiryMs) || expiryMs < DAY || expiryMs > 365 * DAY) throw new ValidationError("expiry: must be between 1 day and 365 days");
    let userId = creator.userId;
    if (user !== undefined) {
      const u = await this.ctx.db.kysely
        .selectFrom("users")
        .selectAll()
        .where((eb) => (/^\d+$/.test(user) ? eb.or([eb("name", "=", user), eb("id", "=", Number(user))]) : eb("name", "=", user)))
        .executeTakeFirst();
      if (!u) throw new NotFoundError("user", user);
      if (creator.userId !== null && creator.userId !== u.id) throw new ForbiddenError("user: an API key bound to a user can only create keys for that same user");
      if (!isAdminRole(roleOf(u))) throw new ForbiddenError(`user: ${JSON.stringify(u.name)} has role ${roleOf(u)}; API keys need an owner or admin`);
      userId = u.id;
    }
    const s = makeSecret("lapi", this.ctx.random);
    const now = this.ctx.now();
    const row = await this.ctx.db.kysely
      .insertInto("api_keys")
      .values({ prefix: s.prefix, hash: s.hash, description: description ?? null, created_at: now, expires_at: now + expiryMs, revoked_at: null, last_used: null, user_id: userId })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { key: s.full, apiKey: await this.viewWithUser(row) };
  }

  private async viewWithUser(r: Parameters<ApiKeyService["view"]>[0] & { user_id: number | null }): Promise<ApiKeyView> {
    const name = r.user_id != null ? (await this.ctx.db.kysely.selectFrom("users").select("name").where("id", "=", r.user_id).executeTakeFirst())?.name : null;
    return this.view({ ...r, user_name: name ?? null });
  }

  private view(r: { id: number; prefix: string; description: string | null; created_at: number; expires_at: number; revoked_at: number | null; last_used: number | null; user_name?: string | null }): ApiKeyView {
    return {
      id: r.id,
      prefix: r.prefix,
      description: r.description,
      createdAt: new Date(r.created_at).toISOString(),
      expiresAt: new Date(r.expires_at).toISOString(),
      revoked: r.revoked_at != null,
      lastUsed: r.last_used != null ? new Date(r.last_used).toISOString() : null,
      user: r.user_name ?? null,
    };
  }

  /** All API keys. */
  async list(): Promise<ApiKeyView[]> {
    const rows = await this.ctx.db.kysely
      .selectFrom("api_keys")
      .leftJoin("users", "users.id", "api_keys.user_id")
      .selectAll("api_keys")
      .select("users.name as user_name")
      .orderBy("api_keys.id")
      .execute();
    return rows.map((r) => this.view(r));
  }

  /** Revokes by id or prefix. */
  async revoke(ref: string): Promise<void> {
    const res = await this.ctx.db.kysely
      .updateTable("api_keys")
      .set({ revoked_at: this.ctx.now() })
      .where((eb) => (/^\d+$/.test(ref) && ref.length < 12 ? eb("id", "=", Number(ref)) : eb("prefix", "=", ref)))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new NotFoundError("api_key", ref);
  }

  /**
   * Verifies a bearer token and returns who it acts for. Throws UnauthorizedError (401)
   * for an unknown, revoked or expired key, ForbiddenError (403) when the key's user is no
   * longer an owner or admin.
   */
  async verify(token: string): Promise<ApiPrincipal> {
    const parts = splitSecret("lapi", token);
    if (!parts) throw new UnauthorizedError("invalid API key");
    const row = await this.ctx.db.kysely.selectFrom("api_keys").selectAll().where("prefix", "=", parts.prefix).executeTakeFirst();
    if (!row || !secretMatches(parts.secret, row.hash)) throw new UnauthorizedError("invalid API key");
    if (row.revoked_at != null) throw new UnauthorizedError("API key has been revoked", "api_key_revoked");
    if (row.expires_at <= this.ctx.now()) throw new UnauthorizedError("API key has expired", "api_key_expired");
    if (row.user_id != null) {
      const u = await this.ctx.db.kysely.selectFrom("users").select(["name", "role"]).where("id", "=", row.user_id).executeTakeFirst();
      if (!u) throw new UnauthorizedError("invalid API key");
      if (!isAdminRole(roleOf(u))) throw new ForbiddenError(`this API key belongs to ${JSON.stringify(u.name)}, whose role is ${roleOf(u)}; the REST API needs an owner or admin`);
    }
    await this.ctx.db.kysely.updateTable("api_keys").set({ last_used: this.ctx.now() }).where("id", "=", row.id).execute();
    return { userId: row.user_id };
  }
}
