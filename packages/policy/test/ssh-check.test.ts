/**
 * SshCheckIndex (issue 9, check mode): the control server finds the policy rule behind a
 * delegated check from (source node, destination node, local user) — the URL carries no
 * more — and reads its checkPeriod. It must pick the rule the destination node applies.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_SSH_CHECK_PERIOD_SEC, SshCheckIndex, parsePolicy, sshRuleKey, type Topology } from "../src/index.js";
import { TAG_OWNERS, TAILNET } from "./tailnet.js";

/** TAILNET with node ids (the server's row ids). */
const TOPO: Topology = {
  users: TAILNET.users,
  nodes: Object.fromEntries(Object.entries(TAILNET.nodes).map(([name, n], i) => [name, { ...n, id: 10 + i }])),
};
const ID = Object.fromEntries(Object.entries(TOPO.nodes).map(([name, n]) => [name, n.id!]));

function index(ssh: Record<string, unknown>[]): SshCheckIndex {
  return new SshCheckIndex(parsePolicy(JSON.stringify({ tagOwners: { ...TAG_OWNERS, "tag:ci": ["alice@example.com"] }, ssh })), TOPO);
}

describe("SshCheckIndex", () => {
  const rules = [
    { action: "accept", src: ["alice@example.com"], dst: ["tag:server"], users: ["nobody"] },
    { action: "check", src: ["alice@example.com", "bob@example.com"], dst: ["tag:server"], users: ["root"] },
    { action: "check", src: ["alice@example.com"], dst: ["tag:server"], users: ["deploy"], checkPeriod: "always" },
    { action: "check", src: ["autogroup:member"], dst: ["tag:server"], users: ["autogroup:nonroot"], checkPeriod: "1h30m" },
    { action: "check", src: ["autogroup:member"], dst: ["autogroup:self"], users: ["root"], checkPeriod: "2h" },
  ];
  const idx = index(rules);

  it("finds the check rule with its position and checkPeriod (default 12 h, always = 0, as written)", () => {
    expect(idx.find(ID["alice-laptop"]!, ID.server1!, "root")).toMatchObject({ index: 1, checkPeriodSec: DEFAULT_SSH_CHECK_PERIOD_SEC });
    expect(DEFAULT_SSH_CHECK_PERIOD_SEC).toBe(12 * 3600);
    expect(idx.find(ID["alice-laptop"]!, ID.server1!, "deploy")).toMatchObject({ index: 2, checkPeriodSec: 0 });
    expect(idx.find(ID["bob-laptop"]!, ID.server1!, "www")).toMatchObject({ index: 3, checkPeriodSec: 5400 });
    expect(idx.find(ID["alice-laptop"]!, ID["alice-laptop"]!, "root")).toMatchObject({ index: 4, checkPeriodSec: 7200 });
  });

  it("finds nothing where no check rule lets the source in as that user", () => {
    expect(index(rules.slice(0, 3)).find(ID["alice-laptop"]!, ID.server1!, "nobody")).toBeNull(); // an accept rule, not a check
    // …but check rules come first on the node (as Tailscale orders them): nonroot's check wins.
    expect(idx.find(ID["alice-laptop"]!, ID.server1!, "nobody")).toMatchObject({ index: 3 });
    expect(idx.find(ID["bob-laptop"]!, ID.server1!, "deploy")).toMatchObject({ index: 3 }); // nonroot covers bob's deploy
    expect(index(rules.slice(0, 3)).find(ID["bob-laptop"]!, ID.server1!, "deploy")).toBeNull();
    expect(idx.find(ID["bob-laptop"]!, ID["alice-laptop"]!, "root")).toBeNull(); // autogroup:self is alice's own devices only
    expect(idx.find(ID.router!, ID.server1!, "root")).toBeNull(); // tagged source, not in any rule
    expect(idx.find(ID["alice-laptop"]!, ID.router!, "root")).toBeNull(); // not a destination
    expect(idx.find(999, ID.server1!, "root")).toBeNull();
    expect(idx.find(ID["alice-laptop"]!, ID.server1!, "")).toBeNull();
    expect(index([]).find(ID["alice-laptop"]!, ID.server1!, "root")).toBeNull();
  });

  it("keys approvals by rule content: stable when rules move, different when a rule is edited", () => {
    const moved = index([rules[2]!, rules[1]!]).find(ID["alice-laptop"]!, ID.server1!, "root")!;
    expect(moved.index).toBe(1);
    expect(moved.key).toBe(idx.find(ID["alice-laptop"]!, ID.server1!, "root")!.key);
    const edited = index([{ ...rules[1]!, checkPeriod: "1h" }]).find(ID["alice-laptop"]!, ID.server1!, "root")!;
    expect(edited.key).not.toBe(moved.key);
    expect(sshRuleKey(edited.rule)).toBe(edited.key);
  });
});
