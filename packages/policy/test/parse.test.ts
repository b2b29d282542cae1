import { describe, expect, it } from "vitest";
import { PolicyError, compileFiles, compilePolicy, parsePolicy } from "../src/index.js";

function err(text: string): PolicyError {
  try {
    parsePolicy(text);
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    return e as PolicyError;
  }
  throw new Error("policy was accepted");
}

describe("parsePolicy", () => {
  it("accepts huJSON comments and trailing commas", () => {
    const p = parsePolicy(`{
      // comment
      "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"],},],
      /* block */
    }`);
    expect(p.grants).toHaveLength(1);
    expect(p.allowAll).toBe(false);
  });

  it("reports syntax errors with line and column", () => {
    const e = err(`{\n  "acls": [\n    {"action": "accept" "src": ["*"]}\n  ]\n}`);
    expect(e.code).toBe("syntax");
    expect(e.line).toBe(3);
    expect(e.column).toBe(25);
  });

  it("rejects unknown keys at their position", () => {
    const e = err(`{\n  "acls": [],\n  "aclz": []\n}`);
    expect(e.code).toBe("unknown-field");
    expect([e.line, e.column]).toEqual([3, 3]);
    expect(e.message).toContain("aclz");
  });

  it("names the offending value: unknown tag, bad port, bad action", () => {
    const tag = err(`{"tagOwners": {}, "acls": [\n {"action": "accept", "src": ["tag:nope"], "dst": ["*:*"]}]}`);
    expect(tag.code).toBe("unknown-reference");
    expect(tag.message).toContain('"tag:nope"');
    expect([tag.line, tag.column]).toEqual([2, 31]);
    const port = err(`{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:ssh"]}]}`);
    expect(port.message).toContain('port range "ssh"');
    expect(port.column).toBe(54);
    const action = err(`{"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]}`);
    expect(action.message).toContain('action="deny"');
    expect(action.column).toBe(22);
  });

  it("rejects autogroup:self as a source and recursive groups", () => {
    expect(err(`{"acls": [{"action": "accept", "src": ["autogroup:self"], "dst": ["*:*"]}]}`).message).toContain("src side");
    expect(err(`{"groups": {"group:a": ["group:b"], "group:b": []}}`).message).toContain("recursive");
  });

  it("rejects an SSH check period above 168h", () => {
    const e = err(`{"ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "200h"}]}`);
    expect(e.message).toContain("200h0m0s is above the max");
  });
});

describe("compilePolicy", () => {
  const topology = {
    users: [{ id: 1, name: "odin", email: "odin@example.com" }],
    nodes: {
      a: { ipv4: "100.64.0.1", ipv6: "fd7a:115c:a1e0::1", user: "odin", tags: [] },
      s: { ipv4: "100.64.0.2", ipv6: "fd7a:115c:a1e0::2", tags: ["tag:server"] },
    },
  };

  it("puts rules only on destination nodes and makes both ends peers", () => {
    const out = compilePolicy(
      parsePolicy(`{"tagOwners": {"tag:server": []}, "acls": [{"action": "accept", "src": ["odin@example.com"], "dst": ["tag:server:22"]}]}`),
      topology,
    );
    expect(out.a.packetFilter).toEqual([]);
    expect(out.s.packetFilter).toEqual([
      {
        SrcIPs: ["100.64.0.1", "fd7a:115c:a1e0::1"],
        DstPorts: [
          { IP: "100.64.0.2", Ports: { First: 22, Last: 22 } },
          { IP: "fd7a:115c:a1e0::2", Ports: { First: 22, Last: 22 } },
        ],
      },
    ]);
    expect(Object.keys(out.a.peers)).toEqual(["s"]);
    expect(Object.keys(out.s.peers)).toEqual(["a"]);
  });

  it("uses the server URL in check-mode SSH actions", () => {
    const out = compilePolicy(
      parsePolicy(`{"tagOwners": {"tag:server": []}, "ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["root"]}]}`),
      topology,
      { serverUrl: "https://ctl.example" },
    );
    expect(out.s.ssh?.[0].action.holdAndDelegate).toBe(
      "https://ctl.example/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER",
    );
  });

  it("compileFiles returns one node's JSON", () => {
    const json = JSON.parse(compileFiles(`{}`, JSON.stringify(topology), "a")) as { packetFilter: unknown[] };
    expect(json.packetFilter).toHaveLength(1);
  });
});
