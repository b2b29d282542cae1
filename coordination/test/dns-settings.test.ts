/**
 * Issue 10, the DNS settings document (services/dns-settings.ts): validation naming field,
 * value and position, limits, and the tailcfg.DNSConfig it becomes.
 */
import { describe, expect, it } from "vitest";
import { checkAgainstDomain, DEFAULT_DNS_SETTINGS, DNS_LIMITS, parseDnsDocument, parseDnsText, toDNSConfig } from "../src/services/dns-settings.js";
import { ValidationError } from "../src/errors.js";

const refusal = (f: () => unknown): ValidationError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return e as ValidationError;
  }
  throw new Error("not refused");
};

describe("DNS settings document", () => {
  it("the defaults give the DNSConfig Lattice sent before DNS settings existed", () => {
    expect(toDNSConfig(DEFAULT_DNS_SETTINGS, "lattice.internal")).toEqual({ Resolvers: [], Domains: ["lattice.internal"], Proxied: true });
    expect(parseDnsDocument({})).toEqual({ settings: DEFAULT_DNS_SETTINGS });
  });

  it("maps nameservers, split DNS, search paths and MagicDNS to Tailscale's DNSConfig encoding", () => {
    const { settings, tailnetDomain } = parseDnsText(`// office
      {
        "tailnetDomain": "Corp.Lattice.",
        "nameservers": [{"address": "1.1.1.1"}, {"address": "2606:4700:4700::1111", "useWithExitNode": true}],
        "splitDNS": {"Office.Example.": ["10.77.0.53"], "lab.example": [], "gone.example": null},
        "searchPaths": ["office.example", "corp.lattice"],
        "preferences": {"magicDNS": true, "overrideLocalDNS": true},
      }`);
    expect(tailnetDomain).toBe("corp.lattice");
    expect(settings.splitDNS).toEqual({ "office.example": [{ address: "10.77.0.53" }], "lab.example": [] });
    expect(toDNSConfig(settings, "corp.lattice")).toEqual({
      Resolvers: [{ Addr: "1.1.1.1" }, { Addr: "2606:4700:4700::1111", UseWithExitNode: true }],
      Routes: { "office.example.": [{ Addr: "10.77.0.53" }], "lab.example.": [] },
      Domains: ["corp.lattice", "office.example"],
      Proxied: true,
    });
    // Without overrideLocalDNS the nameservers are fallbacks only; MagicDNS off drops the tailnet domain from the search list.
    const off = { ...settings, preferences: { magicDNS: false, overrideLocalDNS: false } };
    const cfg = toDNSConfig(off, "corp.lattice");
    expect(cfg.Resolvers).toEqual([]);
    expect(cfg.FallbackResolvers).toEqual([{ Addr: "1.1.1.1" }, { Addr: "2606:4700:4700::1111", UseWithExitNode: true }]);
    expect(cfg.Proxied).toBe(false);
    expect(cfg.Domains).toEqual(["office.example", "corp.lattice"]);
  });

  it("refusals name field, value and position", () => {
    const cases: [unknown, string][] = [
      [{ splitDNS: { "corp.example": ["10.0.0.1", "10.0.0.x"] } }, 'splitDNS["corp.example"][1]: "10.0.0.x" is not an IP address'],
      [{ nameservers: [{ address: "https://dns.example/dns-query" }] }, 'nameservers[0].address: "https://dns.example/dns-query" is not an IP address (DNS-over-HTTPS/TLS'],
      [{ nameservers: ["1.1.1.1:53"] }, 'nameservers[0]: "1.1.1.1:53" is not an IP address (give the address alone'],
      [{ nameservers: ["1.1.1.1", "8.8.8.8", "1.1.1.1"] }, 'nameservers[2]: "1.1.1.1" is listed twice (also nameservers[0])'],
      [{ nameservers: "1.1.1.1" }, "nameservers: expected an array of resolvers, got string"],
      [{ nameservers: [{ address: "1.1.1.1", useWithExitNode: "yes" }] }, "nameservers[0].useWithExitNode: expected a boolean, got string"],
      [{ nameservers: [{ addr: "1.1.1.1" }] }, 'nameservers[0]: unknown field "addr"'],
      [{ searchPaths: ["ok.example", "bad..example"] }, 'searchPaths[1]: "bad..example" is not a domain name: has an empty label'],
      [{ searchPaths: ["a.example", "A.example."] }, 'searchPaths[1]: "a.example" is listed twice (also searchPaths[0])'],
      [{ searchPaths: [`${"a".repeat(64)}.example`] }, "has a label longer than 63 characters"],
      [{ splitDNS: { "Corp.example": [], "corp.example.": [] } }, 'splitDNS["corp.example."]: names the same domain as splitDNS["Corp.example"]'],
      [{ splitDNS: ["corp.example"] }, "splitDNS: expected an object (domain → resolvers), got array"],
      [{ preferences: { magicDNS: "on" } }, "preferences.magicDNS: expected a boolean, got string"],
      [{ preferences: { override: true } }, "preferences.override: unknown field"],
      [{ tailnetDomain: 42 }, "tailnetDomain: expected a domain name (string), got number"],
      [{ tailnetDomain: "my_net.example" }, "'_' is not allowed in host names"],
      [{ tailnetDomain: `${"a.".repeat(95)}b` }, `is longer than ${DNS_LIMITS.tailnetDomainLength} characters`],
      [{ nameserver: [] }, "nameserver: unknown field (expected tailnetDomain, nameservers, splitDNS, searchPaths, preferences)"],
      [[], "dns: expected an object, got array"],
      [null, "dns: expected an object, got null"],
      [{ nameservers: ["100.100.100.100"] }, 'nameservers[0]: "100.100.100.100" is MagicDNS itself'],
      [{ nameservers: [{ address: "::ffff:100.100.100.100" }] }, 'nameservers[0].address: "::ffff:100.100.100.100" is MagicDNS itself'],
      [{ splitDNS: { "corp.example": ["10.0.0.1", "FD7A:115C:A1E0:0::53"] } }, 'splitDNS["corp.example"][1]: "FD7A:115C:A1E0:0::53" is MagicDNS itself'],
      [{ nameservers: ["0.0.0.0"] }, 'nameservers[0]: "0.0.0.0" is the unspecified address'],
      [{ nameservers: ["::"] }, 'nameservers[0]: "::" is the unspecified address'],
    ];
    for (const [doc, msg] of cases) {
      const e = refusal(() => parseDnsDocument(doc));
      expect(e.message, JSON.stringify(doc)).toContain(msg);
      expect(e.code).toBe("dns_invalid");
    }
  });

  it("lists every problem of a document, at most ten, and counts the rest", () => {
    const e = refusal(() => parseDnsDocument(Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]))));
    expect(e.message.split("; ").length).toBe(11);
    expect(e.message).toContain("and 4990 more");
  });

  it("huge lists are refused by their size before their entries are looked at", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8 & 255}.${i & 255}`);
    expect(refusal(() => parseDnsDocument({ nameservers: many(100_000) })).message).toBe(`invalid DNS settings: nameservers: 100000 resolvers; at most ${DNS_LIMITS.nameservers} are allowed`);
    expect(refusal(() => parseDnsDocument({ searchPaths: Array(33).fill("a.example") })).message).toContain("searchPaths: 33 search paths; at most 32");
    const split = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`d${i}.example`, []]));
    expect(refusal(() => parseDnsDocument({ splitDNS: split })).message).toContain("splitDNS: 257 domains; at most 256");
    expect(refusal(() => parseDnsDocument({ splitDNS: { "a.example": many(17) } })).message).toContain('splitDNS["a.example"]: 17 resolvers; at most 16');
    // At the limits: accepted.
    expect(parseDnsDocument({ nameservers: many(16), splitDNS: Object.fromEntries(Object.entries(split).slice(0, 256)) }).settings.nameservers).toHaveLength(16);
  });

  it("a split-DNS domain named __proto__ stays a domain (no prototype pollution)", () => {
    const { settings } = parseDnsText(`{"splitDNS": {"__proto__": ["10.0.0.1"]}}`);
    expect(Object.keys(settings.splitDNS)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(settings.splitDNS)).toBe(Object.prototype);
    expect(toDNSConfig(settings, "t.example").Routes).toEqual(JSON.parse(`{"__proto__.": [{"Addr": "10.0.0.1"}]}`));
  });

  it("a syntax error names line:column; an empty document is refused", () => {
    const e = refusal(() => parseDnsText(`{\n  "nameservers": [\n    "1.1.1.1"\n    "8.8.8.8"\n  ]\n}`));
    expect(e.code).toBe("bad_json");
    expect(e.message).toMatch(/CommaExpected at 4:5/);
    expect(refusal(() => parseDnsText("")).code).toBe("bad_json");
  });

  it("text nested deeper than a document can be is refused before parsing (no stack exhaustion)", () => {
    for (const t of ["[".repeat(500_000), `{"splitDNS": ${"{".repeat(200_000)}`]) {
      const e = refusal(() => parseDnsText(t));
      expect(e.code).toBe("bad_json");
      expect(e.message).toMatch(/nested deeper than 16 levels at 1:\d+/);
    }
  });

  it("with MagicDNS on, split DNS may not take over the tailnet domain", () => {
    const { settings } = parseDnsDocument({ splitDNS: { "x.corp.lattice": ["10.0.0.1"] } });
    expect(refusal(() => checkAgainstDomain(settings, "corp.lattice")).message).toContain('splitDNS["x.corp.lattice"]: is the tailnet domain "corp.lattice" or inside it');
    expect(() => checkAgainstDomain({ ...settings, preferences: { magicDNS: false, overrideLocalDNS: false } }, "corp.lattice")).not.toThrow();
    expect(() => checkAgainstDomain(settings, "lattice")).toThrow();
    expect(() => checkAgainstDomain(settings, "other.lattice")).not.toThrow();
  });
});
