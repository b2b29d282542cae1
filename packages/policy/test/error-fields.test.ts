/**
 * Every rejection names the field (path like `ssh[2].dst[0]`), the value, the position and
 * why (issue 7 A6), and sections or forms Lattice does not implement are rejected instead
 * of ignored (B3, A5 ipPool).
 */
import { describe, expect, it } from "vitest";
import { posOf, rejection, TAG_OWNERS } from "./tailnet.js";

function text(p: Record<string, unknown>): string {
  return JSON.stringify({ tagOwners: TAG_OWNERS, groups: { "group:admins": ["alice@example.com"] }, ...p }, null, 1);
}

const OK_SSH = { action: "accept", src: ["autogroup:member"], dst: ["tag:server"], users: ["root"] };

describe("error messages name field, value, position and reason (A6)", () => {
  it.each([
    [
      "undefined tag in ssh[].dst",
      { ssh: [OK_SSH, OK_SSH, { action: "accept", src: ["autogroup:member"], dst: ["tag:nope"], users: ["root"] }] },
      "ssh[2].dst[0]",
      "tag:nope",
      "not in tagOwners",
    ],
    ["undefined group in autoApprovers.routes", { autoApprovers: { routes: { "10.33.0.0/16": ["group:nope"] } } }, 'autoApprovers.routes["10.33.0.0/16"][0]', "group:nope", "not in groups"],
    ["undefined tag in autoApprovers.exitNode", { autoApprovers: { exitNode: ["tag:nope"] } }, "autoApprovers.exitNode[0]", "tag:nope", "not in tagOwners"],
    ["undefined tag in nodeAttrs target", { nodeAttrs: [{ target: ["tag:nope"], attr: ["funnel"] }] }, "nodeAttrs[0].target[0]", "tag:nope", "not in tagOwners"],
    ["undefined group in nodeAttrs target", { nodeAttrs: [{ target: ["group:nope"], attr: ["funnel"] }] }, "nodeAttrs[0].target[0]", "group:nope", "not in groups"],
    ["bad port in a grant's ip", { grants: [{ src: ["*"], dst: ["*"], ip: ["tcp:22", "tcp:70000"] }] }, "grants[0].ip[1]", "tcp:70000", "out of range"],
    ["IPv6 prefix length 129 in a grant", { grants: [{ src: ["*"], dst: ["fd7a:115c:a1e0::/129"], ip: ["*"] }] }, "grants[0].dst[0]", "fd7a:115c:a1e0::/129", "0-128"],
    ["IPv4 prefix length 33 in an ACL", { acls: [{ action: "accept", src: ["10.0.0.0/33"], dst: ["*:*"] }] }, "acls[0].src[0]", "10.0.0.0/33", "0-32"],
    ["unknown autogroup in a grant", { grants: [{ src: ["autogroup:membr"], dst: ["*"], ip: ["*"] }] }, "grants[0].src[0]", "autogroup:membr", "unknown autogroup"],
    ["undefined host in ACL dst", { acls: [{ action: "accept", src: ["*"], dst: ["nas:443"] }] }, "acls[0].dst[0]", "nas:443", "not an IP, CIDR or name in hosts"],
    ["bad proto", { acls: [{ action: "accept", src: ["*"], proto: "tcpp", dst: ["*:*"] }] }, "acls[0].proto", "tcpp", "known protocol"],
  ])("%s", (_, p, field, value, why) => {
    const t = text(p);
    const e = rejection(t);
    expect(e.field).toBe(field);
    expect(e.value).toBe(value);
    expect(e.message).toContain(`${field}: ${JSON.stringify(value)}: `);
    expect(e.message).toContain(why);
    // The value's own position (its last occurrence: definitions come first).
    const at = t.lastIndexOf(JSON.stringify(value));
    expect([e.line, e.column]).toEqual(posOf(t, JSON.stringify(value), t.slice(at)));
  });
});

describe("nodeAttrs ipPool (A5)", () => {
  it.each(["100.100.100.0/24", "100.115.92.0/24", "100.100.0.0/16"])("rejects a pool overlapping a reserved range: %s", (pool) => {
    const t = text({ nodeAttrs: [{ target: ["autogroup:member"], ipPool: [pool] }] });
    const e = rejection(t);
    expect(e.field).toBe("nodeAttrs[0].ipPool[0]");
    expect(e.value).toBe(pool);
    expect(e.message).toContain("reserves");
    expect([e.line, e.column]).toEqual(posOf(t, JSON.stringify(pool)));
  });

  it("rejects a malformed pool and accepts a valid one", () => {
    expect(rejection(text({ nodeAttrs: [{ target: ["autogroup:member"], ipPool: ["100.64.0.0/40"] }] })).field).toBe("nodeAttrs[0].ipPool[0]");
    expect(() => rejection(text({ nodeAttrs: [{ target: ["autogroup:member"], ipPool: ["100.80.0.0/16"] }] }))).toThrow("policy was accepted");
  });
});

describe("sections Lattice does not implement are rejected, not ignored (B3)", () => {
  it.each([
    ["postures", { postures: { "posture:mac": ["node:os == 'macos'"] } }],
    ["defaultSrcPosture", { defaultSrcPosture: ["posture:mac"] }],
    ["derpMap", { derpMap: { Regions: {} } }],
    ["disableIPv4", { disableIPv4: true }],
    ["OneCGNATRoute", { OneCGNATRoute: "mullvad" }],
  ])("%s", (key, p) => {
    const t = text(p);
    const e = rejection(t);
    expect(e.code).toBe("unknown-field");
    expect(e.field).toBe(key);
    expect(e.message).toContain("not supported by Lattice");
    expect([e.line, e.column]).toEqual(posOf(t, JSON.stringify(key)));
  });

  it("srcPosture on a rule and autoApprovers.services", () => {
    const a = rejection(text({ acls: [{ action: "accept", src: ["*"], dst: ["*:*"], srcPosture: ["posture:mac"] }] }));
    expect(a.field).toBe("acls[0].srcPosture");
    const s = rejection(text({ autoApprovers: { services: { "svc:web": ["tag:server"] } } }));
    expect(s.field).toBe("autoApprovers.services");
  });
});
