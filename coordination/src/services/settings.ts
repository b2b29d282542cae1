/** Key/value settings persisted in the database (tailnet domain, cookie secret). */
import type { ServiceContext } from "./context.js";

/** Settings key of the tailnet domain (absent: the server's `tailnetDomain` option); written by `dns set` (dns.ts). */
export const TAILNET_DOMAIN_KEY = "tailnet_domain";

/** Settings access. */
export class SettingsService {
  constructor(private readonly ctx: ServiceContext) {}

  /** A setting's value, or undefined. */
  async get(key: string): Promise<string | undefined> {
    const r = await this.ctx.db.kysely.selectFrom("settings").select("value").where("key", "=", key).executeTakeFirst();
    return r?.value;
  }

  /** Sets a value (insert or replace). */
  async set(key: string, value: string): Promise<void> {
    await this.ctx.db.kysely
      .insertInto("settings")
      .values({ key, value })
      .onConflict((oc) => oc.column("key").doUpdateSet({ value }))
      .execute();
  }

  /** Returns the stored value, storing `make()` first when absent (first writer wins). */
  async getOrCreate(key: string, make: () => string): Promise<string> {
    const cur = await this.get(key);
    if (cur !== undefined) return cur;
    await this.ctx.db.kysely.insertInto("settings").values({ key, value: make() }).onConflict((oc) => oc.column("key").doNothing()).execute();
    return (await this.get(key))!;
  }

  /** The tailnet's MagicDNS domain. */
  async tailnetDomain(): Promise<string> {
    return (await this.get(TAILNET_DOMAIN_KEY)) ?? this.ctx.options.tailnetDomain;
  }
}
