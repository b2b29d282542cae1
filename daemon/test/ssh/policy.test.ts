// Tailscale SSH policy semantics (ssh/tailssh/tailssh.go evalSSHPolicy/matchRule/mapLocalUser):
// first matching rule wins, principals, user maps ("=" never root, "" denies), rule expiry,
// accept/reject/hold, denial messages, delegate-URL expansion, AcceptEnv globs.
import { describe, expect, it } from "vitest";
import type { Node, SSHPolicy, SSHRule, UserProfile } from "@lattice/types";
import {
  canonicalIp,
  envAccepted,
  evaluateSshPolicy,
  expandDelegateUrl,
  mapLocalUser,
  type SshConnIdentity,
} from "../../src/ssh/policy.js";

const node = (id: number, name: string, ip: string, tags?: string[]): Node => ({
  ID: id,
  StableID: `n${id}`,
  Name: `${name}.tailnet.example.`,
  User: 1,
  Key: "nodekey:00",
  Addresses: [`${ip}/32`],
  AllowedIPs: [`${ip}/32`],
  ...(tags ? { Tags: tags } : {}),
});
const alice: UserProfile = { ID: 1, LoginName: "alice@example.com", DisplayName: "Alice" };
const laptop = node(1, "laptop", "100.64.0.1");
const server1 = node(2, "server1", "100.64.0.2");
const id = (sshUser: string, over: Partial<SshConnIdentity> = {}): SshConnIdentity => ({
  srcIp: "100.64.0.1",
  srcNode: laptop,
  srcUser: alice,
  dstNode: server1,
  sshUser,
  ...over,
});
const now = new Date("2026-06-01T00:00:00Z");
const accept = { accept: true };
const rule = (r: Partial<SSHRule>): SSHRule => ({ principals: [{ any: true }], sshUsers: { "*": "=" }, action: accept, ...r });

describe("mapLocalUser", () => {
  it("exact name first, then *; = keeps the name; '' denies; = never yields root", () => {
    expect(mapLocalUser({ root: "root", "*": "=" }, "root")).toBe("root");
    expect(mapLocalUser({ "*": "=" }, "bob")).toBe("bob");
    expect(mapLocalUser({ "*": "=", root: "" }, "root")).toBe("");
    expect(mapLocalUser({ "*": "=" }, "root")).toBe("");
    expect(mapLocalUser({ deploy: "ubuntu" }, "deploy")).toBe("ubuntu");
    expect(mapLocalUser({ deploy: "ubuntu" }, "other")).toBe("");
    expect(mapLocalUser({ "*": "admin" }, "x")).toBe("admin");
    expect(mapLocalUser({}, "constructor")).toBe("");
  });
});

describe("evaluateSshPolicy", () => {
  it("the first matching rule wins", () => {
    const p: SSHPolicy = {
      rules: [
        rule({ principals: [{ userLogin: "alice@example.com" }], action: { reject: true, message: "no" } }),
        rule({}),
      ],
    };
    expect(evaluateSshPolicy(p, id("bob"), now)).toEqual({ kind: "reject", rule: 0, message: "no" });
  });

  it("a rule whose user map denies is skipped and the next rule is tried", () => {
    const p: SSHPolicy = { rules: [rule({ sshUsers: { root: "" } }), rule({ sshUsers: { root: "root" } })] };
    expect(evaluateSshPolicy(p, id("root"), now)).toMatchObject({ kind: "accept", rule: 1, localUser: "root" });
  });

  it("principals: node (StableID), nodeIP (canonical, v4-mapped), userLogin, any", () => {
    const mk = (pr: SSHRule["principals"]): SSHPolicy => ({ rules: [rule({ principals: pr })] });
    expect(evaluateSshPolicy(mk([{ node: "n1" }]), id("bob"), now).kind).toBe("accept");
    expect(evaluateSshPolicy(mk([{ node: "n9" }]), id("bob"), now).kind).toBe("reject");
    expect(evaluateSshPolicy(mk([{ nodeIP: "100.64.0.1" }]), id("bob", { srcIp: "::ffff:100.64.0.1" }), now).kind).toBe("accept");
    expect(evaluateSshPolicy(mk([{ nodeIP: "fd7a:115c:a1e0::1" }]), id("bob", { srcIp: "FD7A:115C:A1E0:0::1" }), now).kind).toBe("accept");
    expect(evaluateSshPolicy(mk([{ nodeIP: "100.64.0.9" }]), id("bob"), now).kind).toBe("reject");
    expect(evaluateSshPolicy(mk([{ userLogin: "alice@example.com" }]), id("bob"), now).kind).toBe("accept");
    expect(evaluateSshPolicy(mk([{ userLogin: "bob@example.com" }]), id("bob"), now).kind).toBe("reject");
    expect(evaluateSshPolicy(mk([{ any: true }]), id("bob"), now).kind).toBe("accept");
  });

  it("userLogin never matches a tagged node", () => {
    const p: SSHPolicy = { rules: [rule({ principals: [{ userLogin: "alice@example.com" }] })] };
    const tagged = node(1, "ci", "100.64.0.1", ["tag:ci"]);
    expect(evaluateSshPolicy(p, id("bob", { srcNode: tagged }), now).kind).toBe("reject");
  });

  it("expired rules never match (RFC 3339 and Unix seconds); unreadable expiry fails closed", () => {
    const mk = (ruleExpires: string): SSHPolicy => ({ rules: [rule({ ruleExpires })] });
    expect(evaluateSshPolicy(mk("2026-05-31T23:59:59Z"), id("bob"), now).kind).toBe("reject");
    expect(evaluateSshPolicy(mk("2026-06-01T00:00:01Z"), id("bob"), now).kind).toBe("accept");
    expect(evaluateSshPolicy(mk(String(now.getTime() / 1000 - 1)), id("bob"), now).kind).toBe("reject");
    expect(evaluateSshPolicy(mk(String(now.getTime() / 1000 + 60)), id("bob"), now).kind).toBe("accept");
    expect(evaluateSshPolicy(mk("next tuesday"), id("bob"), now).kind).toBe("reject");
  });

  it("check rules hold; the decision carries the mapped user and AcceptEnv", () => {
    const p: SSHPolicy = { rules: [rule({ action: { holdAndDelegate: "https://c/x" }, acceptEnv: ["GIT_*"] })] };
    expect(evaluateSshPolicy(p, id("bob"), now)).toMatchObject({ kind: "hold", rule: 0, localUser: "bob", acceptEnv: ["GIT_*"] });
  });

  it("denial messages name the login, the requested user and the host", () => {
    const p: SSHPolicy = { rules: [rule({ principals: [{ userLogin: "alice@example.com" }], sshUsers: { "*": "=", root: "" } })] };
    expect(evaluateSshPolicy(p, id("root"), now)).toEqual({
      kind: "reject",
      rule: null,
      message: "tailnet policy does not permit alice@example.com to SSH as root on server1",
    });
    const bob = { ID: 2, LoginName: "bob@example.com", DisplayName: "Bob" };
    expect(evaluateSshPolicy(p, id("root", { srcUser: bob }), now)).toMatchObject({
      message: "tailnet policy does not permit bob@example.com to SSH to server1",
    });
    expect(evaluateSshPolicy(undefined, id("root"), now)).toMatchObject({ kind: "reject", rule: null });
    const tagged = node(3, "ci", "100.64.0.3", ["tag:ci", "tag:deploy"]);
    expect(evaluateSshPolicy({ rules: [] }, id("root", { srcNode: tagged, srcUser: null }), now)).toMatchObject({
      message: "tailnet policy does not permit tagged node ci (tag:ci,tag:deploy) to SSH to server1",
    });
  });

  it("a rule with an empty action grants nothing", () => {
    expect(evaluateSshPolicy({ rules: [rule({ action: {} })] }, id("bob"), now).kind).toBe("reject");
  });
});

describe("expandDelegateUrl", () => {
  it("expands every variable, query-escaped", () => {
    const u = expandDelegateUrl("https://c/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?s=$SRC_NODE_IP&d=$DST_NODE_IP&u=$SSH_USER&l=$LOCAL_USER", {
      srcIp: "::ffff:100.64.0.1",
      srcNodeId: 7,
      dstIp: "fd7a:115c:a1e0::2",
      dstNodeId: 9,
      sshUser: "a b&c",
      localUser: "root",
    });
    expect(u).toBe("https://c/machine/ssh/action/7/to/9?s=100.64.0.1&d=fd7a%3A115c%3Aa1e0%3A%3A2&u=a%20b%26c&l=root");
  });
});

describe("canonicalIp and envAccepted", () => {
  it("canonicalizes addresses; leaves garbage as is", () => {
    expect(canonicalIp("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(canonicalIp("[FD7A::0:1]")).toBe("fd7a::1");
    expect(canonicalIp("not-an-ip")).toBe("not-an-ip");
  });
  it("matches AcceptEnv globs", () => {
    expect(envAccepted("GIT_AUTHOR", ["GIT_*"])).toBe(true);
    expect(envAccepted("LD_PRELOAD", ["GIT_*"])).toBe(false);
    expect(envAccepted("X1", ["X?"])).toBe(true);
    expect(envAccepted("X.Y", ["X?Y"])).toBe(true);
    expect(envAccepted("XZY", ["X.Y"])).toBe(false);
  });
});
