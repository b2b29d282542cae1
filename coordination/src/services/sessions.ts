/** Web login sessions: a random id in the database, carried in an HMAC-signed cookie. */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Selectable } from "kysely";
import type { UsersTable } from "../db/schema.js";
import type { ServiceContext } from "./context.js";

/** Session storage and cookie signing. */
export class SessionService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly secret: Buffer,
  ) {}

  /** HMAC-SHA256 of a value with the server's secret, base64url. */
  sign(value: string): string {
    return createHmac("sha256", this.secret).update(value).digest("base64url");
  }

  /** Constant-time check of a signature. */
  verify(value: string, sig: string): boolean {
    const want = Buffer.from(this.sign(value));
    const got = Buffer.from(sig);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  /** Creates a session; returns the cookie value `<id>.<sig>`. */
  async create(userId: number): Promise<string> {
    const id = this.ctx.random(24).toString("base64url");
    const now = this.ctx.now();
    await this.ctx.db.kysely.insertInto("web_sessions").values({ id, user_id: userId, created_at: now, expires_at: now + this.ctx.options.webSessionMs }).execute();
    return `${id}.${this.sign(`session:${id}`)}`;
  }

  /** The session's id and user for a cookie value, or null. */
  async lookup(cookie: string | undefined): Promise<{ id: string; user: Selectable<UsersTable> } | null> {
    if (!cookie) return null;
    const [id, sig] = cookie.split(".");
    if (!id || !sig || !this.verify(`session:${id}`, sig)) return null;
    const row = await this.ctx.db.kysely
      .selectFrom("web_sessions")
      .innerJoin("users", "users.id", "web_sessions.user_id")
      .selectAll("users")
      .select("web_sessions.expires_at as session_expires")
      .where("web_sessions.id", "=", id)
      .executeTakeFirst();
    if (!row || row.session_expires <= this.ctx.now()) return null;
    const { session_expires: _e, ...user } = row;
    return { id, user };
  }

  /** Ends a session. */
  async destroy(id: string): Promise<void> {
    await this.ctx.db.kysely.deleteFrom("web_sessions").where("id", "=", id).execute();
  }
}
