/**
 * The tailnet's DNS settings (issue 10): the document `lattice-control dns get|set` and
 * `GET|PUT /api/v1/dns` exchange, its validation, and its mapping to the tailcfg.DNSConfig
 * every node receives. Pure: no I/O (storage is ./dns.ts).
 *
 * The shape is Tailscale's whole-document DNS configuration
 * (`/api/v2/tailnet/-/dns/configuration`: `nameservers`, `splitDNS`, `searchPaths`,
 * `preferences.{magicDNS,overrideLocalDNS}`) plus Lattice's `tailnetDomain` (Tailscale picks
 * the tailnet's DNS name itself; here the admin does):
 *
 * ```json
 * {
 *   "tailnetDomain": "corp.lattice",
 *   "nameservers": [{ "address": "1.1.1.1" }, { "address": "2606:4700:4700::1111", "useWithExitNode": true }],
 *   "splitDNS": { "office.example": [{ "address": "10.77.0.53" }], "lab.example": [] },
 *   "searchPaths": ["office.example"],
 *   "preferences": { "magicDNS": true, "overrideLocalDNS": true }
 * }
 * ```
 *
 * Choices where Tailscale leaves room (documented in coordination/README.md, "DNS"):
 * - A resolver may also be given as a bare address string (`"1.1.1.1"`, the older
 *   Tailscale split-DNS spelling); `dns get` always prints objects.
 * - Resolvers are IP addresses (plain DNS on port 53). DNS-over-HTTPS/TLS URLs and
 *   `address:port` are refused by name: Lattice nodes forward plain DNS only.
 * - `splitDNS` domain → [] means MagicDNS (100.100.100.100) answers the domain itself;
 *   `null` drops the domain (Tailscale's whole-document PUT spelling).
 * - Every field is optional; absent means the default (no nameservers, no split DNS, no
 *   search paths, MagicDNS on, overrideLocalDNS off) — except `tailnetDomain`, whose
 *   absence keeps the current domain.
 * - Names are compared and stored lowercase without a final dot.
 *
 * Every refusal is a ValidationError listing each problem as `<field path>: <value> <why>`,
 * e.g. `splitDNS["corp.example"][1].address: "10.0.0.x" is not an IP address`.
 */
import { isIP } from "node:net";
import { parseTree, printParseErrorCode, type Node, type ParseError } from "jsonc-parser";
import { formatIp, parseIp } from "@lattice/netaddr";
import type { DNSConfig, DNSResolver } from "@lattice/types";
import { ValidationError } from "../errors.js";
import { lineColumn, tooDeepAt } from "../json-depth.js";

/** One resolver: an IP address, optionally also used while the node uses an exit node. */
export interface DnsResolverSetting {
  address: string;
  useWithExitNode?: boolean;
}

/** The stored DNS settings (the document without `tailnetDomain`). */
export interface DnsSettings {
  /** Global resolvers for names outside the tailnet domain and split-DNS domains. */
  nameservers: DnsResolverSetting[];
  /** Domain suffix → its resolvers ([] = MagicDNS answers it). */
  splitDNS: Record<string, DnsResolverSetting[]>;
  /** Search domains added after the tailnet domain. */
  searchPaths: string[];
  preferences: {
    /** MagicDNS names (`host`, `host.<tailnetDomain>`) answered by 100.100.100.100. */
    magicDNS: boolean;
    /**
     * true: every node resolves through `nameservers` (tailcfg Resolvers); false: nodes keep
     * their own resolvers and get `nameservers` only as fallbacks (tailcfg FallbackResolvers).
     */
    overrideLocalDNS: boolean;
  };
}

/** The document `dns get` prints and `dns set` takes. */
export interface DnsDocument extends DnsSettings {
  /** The tailnet's MagicDNS domain: nodes are `<name>.<tailnetDomain>`. */
  tailnetDomain: string;
}

/** What `dns set` parsed: the settings, and the tailnet domain when the document names one. */
export interface DnsInput {
  settings: DnsSettings;
  tailnetDomain?: string;
}

/** Limits of a document (each refusal names the limit). */
export const DNS_LIMITS = Object.freeze({
  /** Most global nameservers. */
  nameservers: 16,
  /** Most split-DNS domains. */
  splitDomains: 256,
  /** Most resolvers of one split-DNS domain. */
  resolversPerDomain: 16,
  /** Most search paths. */
  searchPaths: 32,
  /** Longest domain name (RFC 1035: 253 characters without the final dot). */
  nameLength: 253,
  /**
   * Longest tailnet domain: a 63-character node name, a dot and the domain must stay
   * within 253 characters.
   */
  tailnetDomainLength: 189,
});

/** The settings of a tailnet that never set any (Lattice's behaviour before issue 10). */
export const DEFAULT_DNS_SETTINGS: DnsSettings = Object.freeze({
  nameservers: [],
  splitDNS: {},
  searchPaths: [],
  preferences: { magicDNS: true, overrideLocalDNS: false },
}) as DnsSettings;

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
const TOP_FIELDS = ["tailnetDomain", "nameservers", "splitDNS", "searchPaths", "preferences"];
/** Most problems listed in one refusal (the rest are counted). */
const MAX_PROBLEMS = 10;

const show = (v: unknown): string => {
  const s = typeof v === "string" ? JSON.stringify(v) : v === undefined ? "undefined" : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};
const kind = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Collects problems; each is `<path>: <what is wrong>`. */
class Problems {
  readonly list: string[] = [];
  #count = 0;
  add(path: string, msg: string): void {
    if (this.#count++ < MAX_PROBLEMS) this.list.push(`${path}: ${msg}`);
  }
  throwIfAny(): void {
    if (this.#count === 0) return;
    const more = this.#count > MAX_PROBLEMS ? `; and ${this.#count - MAX_PROBLEMS} more` : "";
    throw new ValidationError(`invalid DNS settings: ${this.list.join("; ")}${more}`, "dns_invalid");
  }
}

/**
 * A domain name normalized (lowercase, no final dot), or null after recording why not.
 * Labels: letters, digits, '-', '_' (1-63, no '-' at either end); at most `max` characters.
 */
function domainName(v: unknown, path: string, p: Problems, max: number = DNS_LIMITS.nameLength): string | null {
  if (typeof v !== "string") return p.add(path, `expected a domain name (string), got ${kind(v)}`), null;
  const d = v.toLowerCase().replace(/\.$/, "");
  if (d === "") return p.add(path, `${show(v)} is not a domain name (empty)`), null;
  if (d.length > max) return p.add(path, `${show(v)} is longer than ${max} characters`), null;
  const bad = d.split(".").find((l) => !LABEL.test(l));
  if (bad !== undefined) {
    const why = bad === "" ? "has an empty label" : bad.length > 63 ? "has a label longer than 63 characters" : `has an invalid label ${JSON.stringify(bad)} (letters, digits, '-', '_')`;
    return p.add(path, `${show(v)} is not a domain name: ${why}`), null;
  }
  return d;
}

/**
 * Why an IP address cannot be a resolver, or null: MagicDNS's own addresses (nodes would
 * forward to themselves; they skip them too) and the unspecified addresses.
 */
function notAResolver(a: string): string | null {
  const ip = parseIp(a);
  if (!ip) return null;
  const b = ip.bytes;
  const mapped = b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  const canon = formatIp(mapped ? b.subarray(12) : b);
  if (canon === "100.100.100.100" || canon === "fd7a:115c:a1e0::53") return "is MagicDNS itself (each node's own resolver), not an upstream resolver";
  if (b.every((x) => x === 0)) return "is the unspecified address, not a resolver";
  return null;
}

/** A resolver address: an IPv4 or IPv6 address; URLs and ports are refused by name. */
function resolverAddress(v: unknown, path: string, p: Problems): string | null {
  if (typeof v !== "string") return p.add(path, `expected an IP address (string), got ${kind(v)}`), null;
  const a = v.trim();
  if (isIP(a) !== 0) {
    const why = notAResolver(a);
    if (why !== null) return p.add(path, `${show(v)} ${why}`), null;
    return a.toLowerCase();
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) {
    return p.add(path, `${show(v)} is not an IP address (DNS-over-HTTPS/TLS resolvers are not supported: Lattice nodes forward plain DNS to IP addresses)`), null;
  }
  const port = /^\[?([0-9a-f:.]+)\]?:\d+$/i.exec(a);
  if (port && isIP(port[1]!) !== 0) return p.add(path, `${show(v)} is not an IP address (give the address alone; port 53 is used)`), null;
  return p.add(path, `${show(v)} is not an IP address`), null;
}

/** A list of resolvers (objects `{address, useWithExitNode?}` or address strings). */
function resolvers(v: unknown, path: string, max: number, p: Problems): DnsResolverSetting[] {
  if (!Array.isArray(v)) return p.add(path, `expected an array of resolvers, got ${kind(v)}`), [];
  if (v.length > max) return p.add(path, `${v.length} resolvers; at most ${max} are allowed`), [];
  const out: DnsResolverSetting[] = [];
  const seen = new Map<string, number>();
  v.forEach((r, i) => {
    const at = `${path}[${i}]`;
    let addr: string | null;
    let withExit = false;
    if (typeof r === "string") addr = resolverAddress(r, at, p);
    else if (isObject(r)) {
      const extra = Object.keys(r).filter((k) => k !== "address" && k !== "useWithExitNode");
      if (extra.length > 0) p.add(at, `unknown field${extra.length > 1 ? "s" : ""} ${extra.map((k) => JSON.stringify(k)).join(", ")} (expected address, useWithExitNode)`);
      addr = resolverAddress(r.address, `${at}.address`, p);
      if (r.useWithExitNode !== undefined && typeof r.useWithExitNode !== "boolean") p.add(`${at}.useWithExitNode`, `expected a boolean, got ${kind(r.useWithExitNode)}`);
      else withExit = r.useWithExitNode === true;
    } else {
      p.add(at, `expected a resolver ({"address": "1.1.1.1"} or "1.1.1.1"), got ${kind(r)}`);
      return;
    }
    if (addr === null) return;
    const first = seen.get(addr);
    if (first !== undefined) return p.add(at, `${show(addr)} is listed twice (also ${path}[${first}])`);
    seen.set(addr, i);
    out.push(withExit ? { address: addr, useWithExitNode: true } : { address: addr });
  });
  return out;
}

/**
 * Validates a parsed document (any JSON value) and normalizes it.
 * @throws {ValidationError} code `dns_invalid`, listing every problem with its field path.
 */
export function parseDnsDocument(doc: unknown): DnsInput {
  const p = new Problems();
  if (!isObject(doc)) {
    p.add("dns", `expected an object, got ${kind(doc)}`);
    p.throwIfAny();
  }
  const d = doc as Record<string, unknown>;
  const unknown = Object.keys(d).filter((k) => !TOP_FIELDS.includes(k));
  for (const k of unknown) p.add(k, `unknown field (expected ${TOP_FIELDS.join(", ")})`);

  let tailnetDomain: string | undefined;
  if (d.tailnetDomain !== undefined) {
    const t = domainName(d.tailnetDomain, "tailnetDomain", p, DNS_LIMITS.tailnetDomainLength);
    if (t !== null && t.includes("_")) p.add("tailnetDomain", `${show(d.tailnetDomain)} is not a DNS name: '_' is not allowed in host names`);
    else if (t !== null) tailnetDomain = t;
  }

  const prefs = { ...DEFAULT_DNS_SETTINGS.preferences };
  if (d.preferences !== undefined) {
    if (!isObject(d.preferences)) p.add("preferences", `expected an object, got ${kind(d.preferences)}`);
    else {
      for (const [k, v] of Object.entries(d.preferences)) {
        if (k !== "magicDNS" && k !== "overrideLocalDNS") p.add(`preferences.${k}`, "unknown field (expected magicDNS, overrideLocalDNS)");
        else if (typeof v !== "boolean") p.add(`preferences.${k}`, `expected a boolean, got ${kind(v)}`);
        else prefs[k] = v;
      }
    }
  }

  const nameservers = d.nameservers === undefined ? [] : resolvers(d.nameservers, "nameservers", DNS_LIMITS.nameservers, p);

  const searchPaths: string[] = [];
  if (d.searchPaths !== undefined) {
    if (!Array.isArray(d.searchPaths)) p.add("searchPaths", `expected an array of domain names, got ${kind(d.searchPaths)}`);
    else if (d.searchPaths.length > DNS_LIMITS.searchPaths) p.add("searchPaths", `${d.searchPaths.length} search paths; at most ${DNS_LIMITS.searchPaths} are allowed`);
    else
      d.searchPaths.forEach((s, i) => {
        const n = domainName(s, `searchPaths[${i}]`, p);
        if (n === null) return;
        const first = searchPaths.indexOf(n);
        if (first >= 0) p.add(`searchPaths[${i}]`, `${show(n)} is listed twice (also searchPaths[${first}])`);
        else searchPaths.push(n);
      });
  }

  // A Map, not an object literal: a domain key "__proto__" must stay a key.
  const splitDNS = new Map<string, DnsResolverSetting[]>();
  if (d.splitDNS !== undefined) {
    if (!isObject(d.splitDNS)) p.add("splitDNS", `expected an object (domain → resolvers), got ${kind(d.splitDNS)}`);
    else {
      const entries = Object.entries(d.splitDNS);
      if (entries.length > DNS_LIMITS.splitDomains) p.add("splitDNS", `${entries.length} domains; at most ${DNS_LIMITS.splitDomains} are allowed`);
      else {
        const original = new Map<string, string>();
        for (const [key, list] of entries) {
          const at = `splitDNS[${show(key)}]`;
          const name = domainName(key, at, p);
          if (list === null || name === null) continue;
          const before = original.get(name);
          if (before !== undefined) {
            p.add(at, `names the same domain as splitDNS[${show(before)}]`);
            continue;
          }
          original.set(name, key);
          splitDNS.set(name, resolvers(list, at, DNS_LIMITS.resolversPerDomain, p));
        }
      }
    }
  }
  p.throwIfAny();
  return { settings: { nameservers, splitDNS: Object.fromEntries(splitDNS), searchPaths, preferences: prefs }, ...(tailnetDomain !== undefined ? { tailnetDomain } : {}) };
}

/**
 * Parses a document's text, JSON or huJSON (comments, trailing commas), then validates it
 * ({@link parseDnsDocument}).
 * @throws {ValidationError} code `bad_json` naming line:column of a syntax error, or `dns_invalid`.
 */
export function parseDnsText(text: string): DnsInput {
  const deep = tooDeepAt(text, MAX_DEPTH);
  if (deep) throw new ValidationError(`DNS settings are nested deeper than ${MAX_DEPTH} levels at ${at(deep)}`, "bad_json");
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  if (errors.length > 0 || tree === undefined) {
    const e = errors[0] ?? { error: 1, offset: 0, length: 0 };
    throw new ValidationError(`DNS settings are not valid JSON/huJSON: ${printParseErrorCode(e.error)} at ${at(lineColumn(text, e.offset))}`, "bad_json");
  }
  return parseDnsDocument(valueOf(tree));
}

/** Deepest nesting of arrays/objects a document may have (a valid one has 4). */
const MAX_DEPTH = 16;

const at = (p: { line: number; column: number }) => `${p.line}:${p.column}`;

/**
 * The value of a jsonc-parser tree, objects built with own properties only (jsonc-parser's
 * own `parse` assigns keys, so a key "__proto__" would become the object's prototype).
 */
function valueOf(n: Node): unknown {
  switch (n.type) {
    case "object":
      return Object.fromEntries((n.children ?? []).map((p) => [String(p.children![0]!.value), p.children![1] ? valueOf(p.children![1]) : undefined]));
    case "array":
      return (n.children ?? []).map(valueOf);
    default:
      return n.value;
  }
}

/**
 * Checks what depends on the tailnet domain the document will have: with MagicDNS on, no
 * split-DNS domain may be the tailnet domain or inside it (MagicDNS answers those names).
 * @throws {ValidationError} code `dns_invalid`.
 */
export function checkAgainstDomain(s: DnsSettings, tailnetDomain: string): void {
  if (!s.preferences.magicDNS) return;
  const p = new Problems();
  for (const name of Object.keys(s.splitDNS)) {
    if (name === tailnetDomain || name.endsWith(`.${tailnetDomain}`)) {
      p.add(`splitDNS[${show(name)}]`, `is the tailnet domain ${show(tailnetDomain)} or inside it, which MagicDNS answers (turn preferences.magicDNS off to route it elsewhere)`);
    }
  }
  p.throwIfAny();
}

/** Parses stored settings (the database's `dns_config`); the defaults when absent or unreadable. */
export function storedDnsSettings(text: string | undefined): DnsSettings {
  if (text === undefined) return DEFAULT_DNS_SETTINGS;
  try {
    return parseDnsDocument(JSON.parse(text)).settings;
  } catch {
    return DEFAULT_DNS_SETTINGS;
  }
}

/** The document `dns get` prints: settings with the tailnet domain first. */
export function dnsDocument(s: DnsSettings, tailnetDomain: string): DnsDocument {
  return { tailnetDomain, nameservers: s.nameservers, splitDNS: s.splitDNS, searchPaths: s.searchPaths, preferences: s.preferences };
}

const resolver = (r: DnsResolverSetting): DNSResolver => (r.useWithExitNode ? { Addr: r.address, UseWithExitNode: true } : { Addr: r.address });

/**
 * The tailcfg.DNSConfig of the settings (Tailscale's control-side encoding):
 * - `Proxied` = MagicDNS; `Domains` = the tailnet domain (MagicDNS on) then the search paths;
 * - `Resolvers` = nameservers with overrideLocalDNS, else they go to `FallbackResolvers`
 *   (nodes keep their own resolvers);
 * - `Routes` = split DNS, keys as FQDNs with the final dot (`corp.example.`), [] = MagicDNS.
 */
export function toDNSConfig(s: DnsSettings, tailnetDomain: string): DNSConfig {
  const domains = s.preferences.magicDNS ? [tailnetDomain, ...s.searchPaths.filter((d) => d !== tailnetDomain)] : [...s.searchPaths];
  const ns = s.nameservers.map(resolver);
  const cfg: DNSConfig = { Resolvers: s.preferences.overrideLocalDNS ? ns : [], Domains: domains, Proxied: s.preferences.magicDNS };
  if (!s.preferences.overrideLocalDNS && ns.length > 0) cfg.FallbackResolvers = ns;
  const routes = Object.entries(s.splitDNS);
  if (routes.length > 0) cfg.Routes = Object.fromEntries(routes.map(([d, rs]) => [`${d}.`, rs.map(resolver)]));
  return cfg;
}
