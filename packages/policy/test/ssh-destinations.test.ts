/**
 * SSH destinations (issue 7 A1): a user's own devices are reachable over Tailscale SSH only
 * by that same user; tags never reach user-owned devices. Before, `bob → alice` compiled
 * and handed bob root on alice's laptop.
 */
import { describe, expect, it } from "vitest";
import { compileOn, posOf, rejection, TAG_OWNERS } from "./tailnet.js";

function policy(rule: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ tagOwners: TAG_OWNERS, groups: { "group:admins": ["alice@example.com"] }, ...extra, ssh: [rule] }, null, 1);
}

describe("SSH user destinations", () => {
  it("rejects another user as source of a user destination (would grant root), naming field, value, position", () => {
    const text = policy({ action: "accept", src: ["bob@example.com"], dst: ["alice@example.com"], users: ["root"] });
    const e = rejection(text);
    expect(e.code).toBe("invalid-value");
    expect(e.field).toBe("ssh[0].dst[0]");
    expect(e.value).toBe("alice@example.com");
    expect([e.line, e.column]).toEqual(posOf(text, '"alice@example.com"', '"dst"'));
    expect(e.message).toContain("same user");
    expect(e.message).toContain('ssh[0].dst[0]: "alice@example.com"');
  });

  it.each([
    ["a group", ["group:admins"]],
    ["autogroup:member", ["autogroup:member"]],
    ["the user plus another", ["alice@example.com", "bob@example.com"]],
  ])("rejects %s as source of a user destination", (_, src) => {
    const e = rejection(policy({ action: "accept", src, dst: ["alice@example.com"], users: ["root"] }));
    expect(e.field).toBe("ssh[0].dst[0]");
    expect(e.message).toContain("autogroup:self");
  });

  it("rejects tags as source of a user, autogroup:self or autogroup:member destination (not silently dropped)", () => {
    for (const dst of ["alice@example.com", "autogroup:self", "autogroup:member"]) {
      const e = rejection(policy({ action: "accept", src: ["tag:server"], dst: [dst], users: ["root"] }));
      expect(e.field, dst).toBe("ssh[0].dst[0]");
      expect(e.value).toBe(dst);
      expect(e.message).toContain("tag:server");
    }
    const e = rejection(policy({ action: "accept", src: ["autogroup:tagged"], dst: ["autogroup:self"], users: ["root"] }));
    expect(e.message).toContain("autogroup:tagged");
  });

  it("accepts the same user as source and compiles the rule onto that user's devices only", () => {
    const out = compileOn({ ssh: [{ action: "accept", src: ["alice@example.com"], dst: ["alice@example.com"], users: ["root"] }] });
    expect(out["alice-laptop"].ssh).toEqual([
      {
        principals: [{ nodeIP: "100.64.0.1" }, { nodeIP: "fd7a:115c:a1e0::1" }],
        sshUsers: { root: "root" },
        action: { accept: true, allowAgentForwarding: true, allowLocalPortForwarding: true, allowRemotePortForwarding: true },
      },
    ]);
    expect(out["bob-laptop"].ssh).toBeUndefined();
  });

  it("accepts users and groups towards autogroup:self and tags towards tags", () => {
    const out = compileOn({
      groups: { "group:admins": ["alice@example.com"] },
      ssh: [
        { action: "accept", src: ["autogroup:member"], dst: ["autogroup:self"], users: ["autogroup:nonroot"] },
        { action: "accept", src: ["tag:router"], dst: ["tag:server"], users: ["root"] },
      ],
    });
    expect(out["bob-laptop"].ssh?.[0].principals).toEqual([{ nodeIP: "100.64.0.3" }, { nodeIP: "fd7a:115c:a1e0::3" }]);
    expect(out.server1.ssh?.[0].principals).toEqual([{ nodeIP: "100.64.0.20" }, { nodeIP: "fd7a:115c:a1e0::14" }]);
  });
});

describe("SSH users entries (A5, B3)", () => {
  it.each([
    ["", "empty"],
    [" root", "whitespace"],
    ["root ", "whitespace"],
    ["ro\u0007ot", "control characters"],
    ["autogroup:nonrot", "unknown autogroup"],
  ])("rejects %j (%s) with field, value and position", (user, why) => {
    const text = policy({ action: "accept", src: ["autogroup:member"], dst: ["autogroup:self"], users: ["root", user] });
    const e = rejection(text);
    expect(e.field).toBe("ssh[0].users[1]");
    expect(e.value).toBe(user);
    expect(e.message).toContain(why);
    expect(e.line).toBeGreaterThan(0);
  });

  it("accepts what Tailscale takes literally (captured: autogroup:member, localpart without glob)", () => {
    const out = compileOn({ ssh: [{ action: "accept", src: ["autogroup:member"], dst: ["tag:server"], users: ["autogroup:member", "deploy"] }] });
    expect(out.server1.ssh?.[0].sshUsers).toEqual({ "autogroup:member": "autogroup:member", deploy: "deploy", root: "" });
  });
});
