/**
 * Identity rules at the service level (issue 6, A4/B4/A8): OIDC linking never creates a
 * second identity for an address and never hands out a name or login that collides with
 * another user's; the first user (local or OIDC) is the owner, concurrently too.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loginName, parsePolicy } from "@lattice/policy";
import { createControl, type Control } from "../src/app.js";
import { checkTagOwnership } from "../src/services/tags.js";
import { roleOf } from "../src/services/users.js";
import { ControlError } from "../src/errors.js";

const ISSUER = "https://idp.test";

describe("identity services", () => {
  let c: Control;
  beforeEach(async () => {
    c = await createControl({ db: join(mkdtempSync(join(tmpdir(), "lattice-identity-")), "t.db"), options: { serverUrl: "http://control.test" } });
  });
  afterEach(async () => {
    await c.close();
  });

  it("OIDC without e-mail cannot pick a name or login that is another identity", async () => {
    await c.users.create({ name: "alice" });
    await c.users.create({ name: "bob", email: "Bob@Corp.Example" });
    const a = await c.users.loginOidc({ issuer: ISSUER, subject: "s1", email: null, username: "Alice", displayName: null });
    expect(a.name).toBe("alice-2");
    expect(loginName(a)).toBe("alice-2@");
    const b = await c.users.loginOidc({ issuer: ISSUER, subject: "s2", email: null, username: "bob@corp.example", displayName: null });
    expect(loginName(b)).not.toBe("bob@corp.example");
    const policy = parsePolicy(`{"tagOwners": {"tag:a": ["alice@"], "tag:b": ["bob@corp.example"]}}`);
    for (const [u, tag] of [[a, "tag:a"], [b, "tag:b"]] as const) {
      expect(() => checkTagOwnership(policy, [tag], { admin: false, user: { ...u, role: roleOf(u) } })).toThrow(ControlError);
    }
    // The same subject signs in again: the same user, never a new one.
    expect((await c.users.loginOidc({ issuer: ISSUER, subject: "s1", email: null, username: "bob", displayName: null })).id).toBe(a.id);
  });

  it("OIDC e-mail links to the user with that address in any case, never a second user", async () => {
    const bob = await c.users.create({ name: "bob", email: "Bob@Corp.Example" });
    const linked = await c.users.loginOidc({ issuer: ISSUER, subject: "b", email: "bob@corp.example", username: "robert", displayName: null });
    expect(linked.id).toBe(bob.id);
    expect((await c.users.list()).length).toBe(1);
    // Another subject with the same address is refused, not given a look-alike account.
    await expect(c.users.loginOidc({ issuer: ISSUER, subject: "other", email: "BOB@corp.example", username: null, displayName: null })).rejects.toMatchObject({
      code: "oidc_identity_conflict",
    });
  });

  it("local creation: names and e-mails are unique case-insensitively with typed errors", async () => {
    await c.users.create({ name: "bob", email: "bob@corp.example" });
    await expect(c.users.create({ name: "ivan", email: "BOB@corp.example" })).rejects.toMatchObject({ code: "email_taken", status: 409 });
    await expect(c.users.create({ name: "bob" })).rejects.toMatchObject({ code: "user_exists", status: 409 });
    const results = await Promise.allSettled([c.users.create({ name: "x1", email: "same@corp.example" }), c.users.create({ name: "x2", email: "Same@Corp.Example" })]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });

  it("the first user is the owner, also for concurrent first OIDC logins", async () => {
    const [u1, u2] = await Promise.all([
      c.users.loginOidc({ issuer: ISSUER, subject: "p", email: "p@corp.example", username: null, displayName: null }),
      c.users.loginOidc({ issuer: ISSUER, subject: "q", email: "q@corp.example", username: null, displayName: null }),
    ]);
    expect([roleOf(u1), roleOf(u2)].sort()).toEqual(["member", "owner"]);
    expect((await c.users.create({ name: "later" })).role).toBe("member");
  });
});
