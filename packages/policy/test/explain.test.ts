/** explainAccess: the console's "who can reach what" preview names the deciding rule. */
import { describe, expect, it } from "vitest";
import { explainAccess, parsePolicy, type Topology } from "../src/index.js";

const TEXT = `{
  "groups": { "group:ops": ["bob@corp.example"] },
  "tagOwners": { "tag:server": ["alice@"], "tag:db": ["alice@"] },
  "hosts": { "office": "192.0.2.0/24" },
  "grants": [
    { "src": ["tag:db"], "dst": ["tag:db"], "ip": ["5432"] },
  ],
  "acls": [
    // rule 1
    { "action": "accept", "src": ["tag:server"], "dst": ["tag:server:*"] },
    // rule 2
    { "action": "accept", "src": ["alice@"], "dst": ["tag:server:22"] },
    { "action": "accept", "src": ["group:ops", "office"], "dst": ["tag:db:5432", "bob@corp.example:443"] },
  ],
}`;

const TOPOLOGY: Topology = {
  users: [
    { id: 1, name: "alice", email: "alice@", role: "owner" },
    { id: 2, name: "bob", email: "bob@corp.example", role: "member" },
  ],
  nodes: {
    srv: { id: 1, ipv4: "100.64.0.1", ipv6: "fd7a:115c:a1e0::1", tags: ["tag:server"] },
    db: { id: 2, ipv4: "100.64.0.2", ipv6: "fd7a:115c:a1e0::2", tags: ["tag:db"] },
    web: { id: 3, ipv4: "100.64.0.3", ipv6: "fd7a:115c:a1e0::3", tags: [], user: "bob" },
  },
};

const explain = (src: string, dst: string) => explainAccess(TEXT, parsePolicy(TEXT), TOPOLOGY, src, dst);

describe("explainAccess", () => {
  it("names the acls rule by its number and line, also for a user without devices", () => {
    const r = explain("alice@", "tag:server:22");
    expect(r.allowed).toBe(true);
    expect(r.rule).toEqual({ list: "acls", number: 2, line: 12 });
    expect(r.summary).toBe("alice@ → tag:server:22 allowed by rule 2 (line 12)");
  });

  it("denies what no rule allows: another port, another user", () => {
    expect(explain("alice@", "tag:server:80")).toMatchObject({ allowed: false, rule: null });
    expect(explain("bob@corp.example", "tag:server:22").allowed).toBe(false);
  });

  it("grants come first and are numbered as grants", () => {
    expect(explain("tag:db", "tag:db:5432").rule).toMatchObject({ list: "grants", number: 1 });
  });

  it("follows groups, machines by name and host addresses", () => {
    expect(explain("group:ops", "db:5432").rule).toMatchObject({ list: "acls", number: 3 });
    expect(explain("web", "tag:db:5432").rule).toMatchObject({ list: "acls", number: 3 });
    expect(explain("srv", "srv:1234").rule).toMatchObject({ list: "acls", number: 1 });
    expect(explain("192.0.2.7", "bob@corp.example:443").rule).toMatchObject({ list: "acls", number: 3 });
  });

  it("names bad input by field", () => {
    expect(() => explain("nobody@", "tag:server:22")).toThrow(/^source: no user has the login "nobody@"/);
    expect(() => explain("alice@", "tag:server")).toThrow(/^destination: "tag:server" must be alias:port/);
    expect(() => explain("alice@", "group:nope:22")).toThrow(/^destination: "group:nope" is not a group/);
  });
});
