/** API keys for the REST API (`Authorization: Bearer lapi-...`), stored hashed. */
import { NotFoundError, UnauthorizedError, ValidationError } from "../errors.js";
import type { ServiceContext } from "./context.js";
import { makeSecret, secretMatches, splitSecret } from "./secrets.js";

/** An API key as listed (never the secret). */
export interface ApiKeyView {
  id: number;
  prefix: string;
  description: string | null;
  createdAt: string;
  expiresAt: string;
  revoked: boolean;
  lastUsed: string | null;
}

const DAY = 24 * 3600_000;

/** API key management and verification. */
export class ApiKeyService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Creates a key valid for `expiryMs` (1 to 365 days, default 90); returns the secret once. */
  async create(description?: string, expiryMs = 90 * DAY): Promise<{ key: string; apiKey: ApiKeyView }> {
    if (!Number.isFinite(expiryMs) || expiryMs < DAY || expiryMs > 365 * DAY) throw new ValidationError("expiry: must be between 1 day and 365 days");
    const s = makeSecret("lapi", this.ctx.random);
    const now = this.ctx.now();
    const row = await this.ctx.db.kysely
      .insertInto("api_keys")
      .values({ prefix: s.prefix, hash: s.hash, description: description ?? null, created_at: now, expires_at: now + expiryMs, revoked_at: null, last_used: null })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { key: s.full, apiKey: this.view(row) };
  }

  private view(r: { id: number; prefix: string; description: string | null; created_at: number; expires_at: number; revoked_at: number | null; last_used: number | null }): ApiKeyView {
    return {
      id: r.id,
      prefix: r.prefix,
      description: r.description,
      createdAt: new Date(r.created_at).toISOString(),
      expiresAt: new Date(r.expires_at).toISOString(),
      revoked: r.revoked_at != null,
      lastUsed: r.last_used != null ? new Date(r.last_used).toISOString() : null,
    };
  }

  /** All API keys. */
  async list(): Promise<ApiKeyView[]> {
    return (await this.ctx.db.kysely.selectFrom("api_keys").selectAll().orderBy("id").execute()).map((r) => this.view(r));
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

  /** Verifies a bearer token; throws UnauthorizedError. */
  async verify(token: string): Promise<void> {
    const parts = splitSecret("lapi", token);
    if (!parts) throw new UnauthorizedError("invalid API key");
    const row = await this.ctx.db.kysely.selectFrom("api_keys").selectAll().where("prefix", "=", parts.prefix).executeTakeFirst();
    if (!row || !secretMatches(parts.secret, row.hash)) throw new UnauthorizedError("invalid API key");
    if (row.revoked_at != null) throw new UnauthorizedError("API key has been revoked", "api_key_revoked");
    if (row.expires_at <= this.ctx.now()) throw new UnauthorizedError("API key has expired", "api_key_expired");
    await this.ctx.db.kysely.updateTable("api_keys").set({ last_used: this.ctx.now() }).where("id", "=", row.id).execute();
  }
}
