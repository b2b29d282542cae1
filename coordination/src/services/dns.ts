/**
 * The tailnet's DNS settings in the database (settings keys `dns_config`, JSON of
 * {@link DnsSettings}, and `tailnet_domain`), validated by ./dns-settings.ts. A change is
 * announced on the change bus as `dnsChanged`; the node backend reloads the settings and
 * every map stream gets the new DNSConfig (and, when the domain changed, every node under
 * its new name).
 */
import { checkAgainstDomain, dnsDocument, parseDnsDocument, parseDnsText, storedDnsSettings, type DnsDocument, type DnsInput, type DnsSettings } from "./dns-settings.js";
import type { ServiceContext } from "./context.js";
import { TAILNET_DOMAIN_KEY } from "./settings.js";

/** Settings key of the stored {@link DnsSettings}. */
export const DNS_CONFIG_KEY = "dns_config";

/** What a {@link DnsService.set} changed. */
export interface DnsChangeResult {
  /** The document as stored. */
  dns: DnsDocument;
  /** The document before. */
  previous: DnsDocument;
  /** True when the tailnet domain changed (every node's name changed). */
  domainChanged: boolean;
}

/** DNS settings storage. */
export class DnsService {
  constructor(private readonly ctx: ServiceContext) {}

  /** The current settings and tailnet domain. */
  async current(): Promise<{ settings: DnsSettings; domain: string }> {
    const rows = await this.ctx.db.kysely.selectFrom("settings").select(["key", "value"]).where("key", "in", [DNS_CONFIG_KEY, TAILNET_DOMAIN_KEY]).execute();
    const get = (k: string) => rows.find((r) => r.key === k)?.value;
    return { settings: storedDnsSettings(get(DNS_CONFIG_KEY)), domain: get(TAILNET_DOMAIN_KEY) ?? this.ctx.options.tailnetDomain };
  }

  /** The document `dns get` prints. */
  async get(): Promise<DnsDocument> {
    const c = await this.current();
    return dnsDocument(c.settings, c.domain);
  }

  /**
   * Validates and stores a document: a parsed JSON value, or JSON/huJSON text. Both keys
   * are written in one transaction (nothing is written when anything is refused), then
   * `dnsChanged` is published.
   * @throws {ValidationError} codes `bad_json` / `dns_invalid`, naming field, value and position.
   */
  async set(doc: unknown, asText = false): Promise<DnsChangeResult> {
    const input: DnsInput = asText ? parseDnsText(String(doc)) : parseDnsDocument(doc);
    const before = await this.current();
    const domain = input.tailnetDomain ?? before.domain;
    checkAgainstDomain(input.settings, domain);
    const json = JSON.stringify(input.settings);
    await this.ctx.db.kysely.transaction().execute(async (tx) => {
      const put = (key: string, value: string) =>
        tx.insertInto("settings").values({ key, value }).onConflict((oc) => oc.column("key").doUpdateSet({ value })).execute();
      await put(DNS_CONFIG_KEY, json);
      if (input.tailnetDomain !== undefined) await put(TAILNET_DOMAIN_KEY, input.tailnetDomain);
    });
    const domainChanged = domain !== before.domain;
    this.ctx.bus.publish({ dnsChanged: true });
    return { dns: dnsDocument(input.settings, domain), previous: dnsDocument(before.settings, before.domain), domainChanged };
  }
}
