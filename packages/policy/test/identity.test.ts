/**
 * The identity rule in the compiler (issue 6: A4 look-alike identities, A8 roles,
 * A9 localpart never maps to root) and the shared identity functions.
 */
import { describe, expect, it } from "vitest";
import { autoApprovedRoutes, compileFiles, compilePolicy, loginName, parsePolicy, sameIdentity, userMatchesToken, userTokenProblems, type Topology } from "../src/index.js";

const IS_ADMIN = "https://tailscale.com/cap/is-admin";
const IS_OWNER = "https://tailscale.com/cap/is-owner";

function topo(users: Topology["users"], nodes: Record<string, { user?: string; tags?: string[] }>): Topology {
  const out: Topology = { users, nodes: {} };
  let i = 1;
  for (const [name, n] of Object.entries(nodes)) {
    out.nodes[name] = { ipv4: `100.64.0.${i}`, ipv6: `fd7a:115c:a1e0::${i}`, tags: n.tags ?? [], ...(n.user ? { user: n.user } : {}) };
    i++;
  }
  return out;
}

function srcOf(out: ReturnType<typeof compilePolicy>, node: string): string[] {
  return out[node]!.packetFilter.flatMap((r) => r.SrcIPs ?? []);
}

describe("identity functions", () => {
  it("login name is the e-mail when set, else name@", () => {
    expect(loginName({ name: "alice", email: "alice@corp.example" })).toBe("alice@corp.example");
    expect(loginName({ name: "alice", email: null })).toBe("alice@");
    expect(loginName({ name: "alice", email: "" })).toBe("alice@");
  });

  it("compares case-insensitively and never by local part or bare name", () => {
    expect(sameIdentity("Bob@Example.com", "bob@example.COM")).toBe(true);
    // ASCII folding only, exactly like SQLite's lower() behind the unique index.
    expect(sameIdentity("Ärger@example.com", "ärger@example.com")).toBe(false);
    expect(userMatchesToken("alice@corp.example", { name: "alice", email: null })).toBe(false);
    expect(userMatchesToken("alice@", { name: "alice", email: "alice@corp.example" })).toBe(false);
    expect(userMatchesToken("alice", { name: "alice", email: null })).toBe(false);
    expect(userMatchesToken("ALICE@", { name: "alice", email: null })).toBe(true);
  });
});

describe("userTokenProblems", () => {
  it("names group members and tag owners that are not login names, and nothing else", () => {
    const p = parsePolicy(`{"groups": {"group:a": ["alice", "bob@", "c@x.y"]}, "tagOwners": {"tag:t": ["group:a", "autogroup:admin", "tag:u", "odin"], "tag:u": []}}`);
    expect(userTokenProblems(p)).toEqual([
      'groups["group:a"]: "alice" is not a login name; write the user\'s e-mail, or "alice@" for a user without one',
      'tagOwners["tag:t"]: "odin" is not a login name; write the user\'s e-mail, or "odin@" for a user without one',
    ]);
  });
});

describe("compiler identity rule (A4)", () => {
  const users = [
    { id: 1, name: "odin", email: "odin@corp.example" },
    { id: 2, name: "alice", email: "" },
    { id: 3, name: "bob", email: "bob@corp.example" },
  ];
  const t = topo(users, { server: { tags: ["tag:server"] }, alicebox: { user: "alice" }, bobbox: { user: "bob" } });

  it("a user token with a domain does not select the e-mail-less user with that local part", () => {
    const out = compilePolicy(parsePolicy(`{"tagOwners": {"tag:server": []}, "acls": [{"action": "accept", "src": ["alice@corp.example"], "dst": ["tag:server:22"]}]}`), t);
    expect(srcOf(out, "server")).toEqual([]);
  });

  it("name@ selects only the user whose login is name@, not a user with that name and an e-mail", () => {
    const out = compilePolicy(parsePolicy(`{"tagOwners": {"tag:server": []}, "acls": [{"action": "accept", "src": ["alice@", "bob@"], "dst": ["tag:server:22"]}]}`), t);
    expect(srcOf(out, "server")).toEqual(["100.64.0.2", "fd7a:115c:a1e0::2"]);
  });

  it("e-mail tokens match case-insensitively in ACLs and groups", () => {
    const out = compilePolicy(
      parsePolicy(`{"groups": {"group:ops": ["BOB@Corp.Example"]}, "tagOwners": {"tag:server": []}, "acls": [{"action": "accept", "src": ["group:ops"], "dst": ["tag:server:22"]}]}`),
      t,
    );
    expect(srcOf(out, "server")).toEqual(["100.64.0.3", "fd7a:115c:a1e0::3"]);
  });

  it("autoApprovers use the same rule (look-alike gets no route approved)", () => {
    const node = { ipv4: "100.64.0.2", ipv6: "fd7a:115c:a1e0::2", user: "alice", routable_ips: ["10.0.0.0/24"] };
    expect(autoApprovedRoutes(parsePolicy(`{"autoApprovers": {"routes": {"10.0.0.0/24": ["alice@corp.example"]}}}`), node, users)).toEqual([]);
    expect(autoApprovedRoutes(parsePolicy(`{"autoApprovers": {"routes": {"10.0.0.0/24": ["ALICE@"]}}}`), node, users)).toEqual(["10.0.0.0/24"]);
  });
});

describe("roles (A8)", () => {
  const policy = parsePolicy(`{"tagOwners": {"tag:server": []}, "acls": [{"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:server:22"]}, {"action": "accept", "src": ["autogroup:owner"], "dst": ["tag:server:80"]}]}`);
  const withRoles = topo(
    [
      { id: 1, name: "odin", email: "odin@corp.example", role: "owner" },
      { id: 2, name: "ada", email: "ada@corp.example", role: "admin" },
      { id: 3, name: "mia", email: "mia@corp.example", role: "member" },
    ],
    { server: { tags: ["tag:server"] }, odinbox: { user: "odin" }, adabox: { user: "ada" }, miabox: { user: "mia" } },
  );

  it("autogroup:admin is the owner's and admins' devices, never a member's", () => {
    const out = compilePolicy(policy, withRoles);
    const ssh = out.server!.packetFilter.find((r) => r.DstPorts?.[0]?.Ports.First === 22)!;
    expect(ssh.SrcIPs).toEqual(["100.64.0.2/31", "fd7a:115c:a1e0::2/127"]);
    const web = out.server!.packetFilter.find((r) => r.DstPorts?.[0]?.Ports.First === 80)!;
    expect(web.SrcIPs).toEqual(["100.64.0.2", "fd7a:115c:a1e0::2"]);
  });

  it("is-admin and is-owner capabilities follow roles", () => {
    const out = compilePolicy(policy, withRoles);
    expect(out.odinbox!.capMap).toHaveProperty([IS_ADMIN]);
    expect(out.odinbox!.capMap).toHaveProperty([IS_OWNER]);
    expect(out.adabox!.capMap).toHaveProperty([IS_ADMIN]);
    expect(out.adabox!.capMap).not.toHaveProperty([IS_OWNER]);
    expect(out.miabox!.capMap).not.toHaveProperty([IS_ADMIN]);
    expect(out.miabox!.capMap).not.toHaveProperty([IS_OWNER]);
  });

  it("without roles the first user is the owner and everyone else admin (conformance default)", () => {
    const plain = topo(
      [
        { id: 1, name: "odin", email: "odin@corp.example" },
        { id: 2, name: "mia", email: "mia@corp.example" },
      ],
      { odinbox: { user: "odin" }, miabox: { user: "mia" } },
    );
    const out = compilePolicy(parsePolicy(`{}`), plain);
    expect(out.odinbox!.capMap).toHaveProperty([IS_OWNER]);
    expect(out.miabox!.capMap).toHaveProperty([IS_ADMIN]);
    expect(out.miabox!.capMap).not.toHaveProperty([IS_OWNER]);
  });

  it("the offline topology may carry roles; an unknown role is a topology error naming the field", () => {
    const json = JSON.stringify(withRoles);
    const one = JSON.parse(compileFiles(`{}`, json, "miabox")) as { capMap: Record<string, unknown> };
    expect(one.capMap).not.toHaveProperty([IS_ADMIN]);
    const bad = JSON.stringify({ ...withRoles, users: [{ id: 1, name: "odin", email: "o@x.y", role: "root" }] });
    expect(() => compileFiles(`{}`, bad)).toThrow(/topology\.users\[0\]\.role: "root" is not one of owner, admin, member/);
  });
});

describe("SSH localpart never maps to root (A9)", () => {
  const users = [
    { id: 1, name: "odin", email: "odin@corp.example" },
    { id: 2, name: "root", email: "root@corp.example" },
  ];
  const t = topo(users, { server: { tags: ["tag:server"] }, rootbox: { user: "root" }, odinbox: { user: "odin" } });

  it("a user whose e-mail is root@domain gets no root mapping from localpart:*@domain", () => {
    const out = compilePolicy(
      parsePolicy(`{"tagOwners": {"tag:server": []}, "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["autogroup:nonroot", "localpart:*@corp.example"]}]}`),
      t,
    );
    const rules = out.server!.ssh ?? [];
    expect(rules.length).toBeGreaterThan(0);
    for (const r of rules) expect(r.sshUsers.root ?? "").toBe("");
    // odin still gets his local part.
    expect(rules.some((r) => r.sshUsers.odin === "odin")).toBe(true);
  });

  it("sshTests agree: root is denied for the root@ user unless the rule lists root", () => {
    const base = `"tagOwners": {"tag:server": []}, "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["localpart:*@corp.example"%EXTRA%]}]`;
    const deny = `{${base.replace("%EXTRA%", "")}, "sshTests": [{"src": "root@corp.example", "dst": ["tag:server"], "deny": ["root"]}]}`;
    expect(() => compilePolicy(parsePolicy(deny), t)).not.toThrow();
    const accept = `{${base.replace("%EXTRA%", ', "root"')}, "sshTests": [{"src": "root@corp.example", "dst": ["tag:server"], "accept": ["root"]}]}`;
    expect(() => compilePolicy(parsePolicy(accept), t)).not.toThrow();
  });
});
