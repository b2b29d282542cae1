/** The small tailnet of issue 7 (test helper): two users, a server, a subnet router and an exit node. */
import { PolicyError, compilePolicy, parsePolicy, type NodeCompiled, type Topology } from "../src/index.js";

/** Users alice and bob; tag:server, tag:router (10.33.0.0/16), tag:exit (0.0.0.0/0, ::/0). */
export const TAILNET: Topology = {
  users: [
    { id: 1, name: "alice", email: "alice@example.com" },
    { id: 2, name: "bob", email: "bob@example.com" },
  ],
  nodes: {
    "alice-laptop": { ipv4: "100.64.0.1", ipv6: "fd7a:115c:a1e0::1", user: "alice", tags: [] },
    "bob-laptop": { ipv4: "100.64.0.3", ipv6: "fd7a:115c:a1e0::3", user: "bob", tags: [] },
    server1: { ipv4: "100.64.0.10", ipv6: "fd7a:115c:a1e0::a", tags: ["tag:server"] },
    router: { ipv4: "100.64.0.20", ipv6: "fd7a:115c:a1e0::14", tags: ["tag:router"], routable_ips: ["10.33.0.0/16"], approved_routes: ["10.33.0.0/16"] },
    exit: {
      ipv4: "100.64.0.30",
      ipv6: "fd7a:115c:a1e0::1e",
      tags: ["tag:exit"],
      routable_ips: ["0.0.0.0/0", "::/0"],
      approved_routes: ["0.0.0.0/0", "::/0"],
    },
  },
};

/** tagOwners for the three tags (alice owns them). */
export const TAG_OWNERS = { "tag:server": ["alice@example.com"], "tag:router": ["alice@example.com"], "tag:exit": ["alice@example.com"] };

/** Parses and compiles `policy` (an object; tagOwners added unless given) on {@link TAILNET}. */
export function compileOn(policy: Record<string, unknown>, topology: Topology = TAILNET): Record<string, NodeCompiled> {
  return compilePolicy(parsePolicy(JSON.stringify({ tagOwners: TAG_OWNERS, ...policy })), topology, { serverUrl: "https://ctl.example" });
}

/** The PolicyError that parsing or compiling `text` raises (fails the test when accepted). */
export function rejection(text: string, topology: Topology = TAILNET): PolicyError {
  try {
    compilePolicy(parsePolicy(text), topology, { serverUrl: "https://ctl.example" });
  } catch (e) {
    if (e instanceof PolicyError) return e;
    throw e;
  }
  throw new Error("policy was accepted");
}

/** Position (line, column) of the first `needle` in `text` after `after` (1-based). */
export function posOf(text: string, needle: string, after = ""): [number, number] {
  const i = text.indexOf(needle, after ? text.indexOf(after) : 0);
  if (i < 0) throw new Error(`${needle} not in text`);
  const before = text.slice(0, i).split("\n");
  return [before.length, before[before.length - 1].length + 1];
}
