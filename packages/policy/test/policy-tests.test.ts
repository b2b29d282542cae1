/**
 * The policy's `tests` / `sshTests` (issue 7 B1, A5): identities without devices are
 * evaluated (not vacuously passing), tests that assert nothing are rejected, IPv6
 * destinations (also "[v6]:port") are evaluated, failures name field, value, position.
 */
import { describe, expect, it } from "vitest";
import { TAILNET, compileOn, posOf, rejection, TAG_OWNERS } from "./tailnet.js";

const GROUPS = { "group:admins": ["alice@example.com", "carol@example.com"] };
const ACLS = [{ action: "accept", src: ["group:admins"], dst: ["tag:server:22", "tag:db:5432"] }];
const OWNERS = { ...TAG_OWNERS, "tag:db": ["alice@example.com"] };

function text(tests: unknown[], key = "tests", extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ tagOwners: OWNERS, groups: GROUPS, acls: ACLS, ...extra, [key]: tests }, null, 1);
}

describe("tests evaluate identities without devices (B1)", () => {
  it("a user who has no device yet (not even joined) is evaluated through the groups the ACL allows", () => {
    const t = text([{ src: "carol@example.com", deny: ["tag:server:22"] }]);
    const e = rejection(t);
    expect(e.code).toBe("tests-failed");
    expect(e.field).toBe("tests[0].deny[0]");
    expect(e.value).toBe("tag:server:22");
    expect(e.message).toContain("expected deny");
    expect([e.line, e.column]).toEqual(posOf(t, '"tag:server:22"', '"deny"'));
    expect(() => compileOn({ groups: GROUPS, acls: ACLS, tagOwners: OWNERS, tests: [{ src: "carol@example.com", accept: ["tag:server:22"] }] })).not.toThrow();
  });

  it("a known user without devices (bob has his laptop removed) is evaluated", () => {
    const topo = structuredClone(TAILNET);
    delete topo.nodes["bob-laptop"];
    const e = rejection(text([{ src: "bob@example.com", accept: ["tag:server:22"] }]), topo);
    expect(e.message).toContain("expected accept");
  });

  it("a tag no node carries yet is evaluated as a destination", () => {
    const e = rejection(text([{ src: "alice@example.com", deny: ["tag:db:5432"] }]));
    expect(e.field).toBe("tests[0].deny[0]");
    expect(e.message).toContain("expected deny");
    expect(() => compileOn({ groups: GROUPS, acls: ACLS, tagOwners: OWNERS, tests: [{ src: "alice@example.com", accept: ["tag:db:5432"], deny: ["tag:db:22"] }] })).not.toThrow();
  });

  it("sshTests evaluate a user without devices", () => {
    const ssh = [{ action: "accept", src: ["group:admins"], dst: ["tag:server"], users: ["root"] }];
    const e = rejection(text([{ src: "carol@example.com", dst: ["tag:server"], deny: ["root"] }], "sshTests", { ssh }));
    expect(e.message).toContain("expected deny");
  });
});

describe("tests entries (A5)", () => {
  it("rejects a test with neither accept nor deny, and an sshTest with no users", () => {
    const t = text([{ src: "alice@example.com" }]);
    const e = rejection(t);
    expect(e.field).toBe("tests[0]");
    expect(e.message).toContain('"accept" or "deny"');
    expect([e.line, e.column]).toEqual(posOf(t, "{", '"tests"'));
    const s = rejection(text([{ src: "alice@example.com", dst: ["tag:server"] }], "sshTests"));
    expect(s.field).toBe("sshTests[0]");
  });

  it("evaluates an IPv6 destination in brackets and a hosts alias no node holds", () => {
    const hosts = { db6: "fd7a:115c:a1e0::99", spare: "100.64.0.99" };
    expect(() => compileOn({ hosts, groups: GROUPS, acls: ACLS, tagOwners: OWNERS, tests: [{ src: "alice@example.com", accept: ["[fd7a:115c:a1e0::a]:22"], deny: ["[fd7a:115c:a1e0::a]:80", "spare:22", "db6:22"] }] })).not.toThrow();
    const e = rejection(text([{ src: "alice@example.com", accept: ["[fd7a:115c:a1e0::a]:80"] }]));
    expect(e.value).toBe("[fd7a:115c:a1e0::a]:80");
    expect(e.message).toContain("expected accept");
    const h = rejection(text([{ src: "alice@example.com", accept: ["spare:22"] }], "tests", { hosts }));
    expect(h.message).toContain("expected accept");
  });

  it("localpart:*@DOMAIN outside the tailnet's domain names field, value and position", () => {
    const t = JSON.stringify({ tagOwners: OWNERS, ssh: [{ action: "accept", src: ["autogroup:member"], dst: ["tag:server"], users: ["root", "localpart:*@other.com"] }] }, null, 1);
    const e = rejection(t);
    expect(e.field).toBe("ssh[0].users[1]");
    expect(e.value).toBe("localpart:*@other.com");
    expect(e.message).toContain('"example.com"');
    expect([e.line, e.column]).toEqual(posOf(t, '"localpart:*@other.com"'));
  });
});
