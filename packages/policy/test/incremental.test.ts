import { describe, expect, it } from "vitest";
import { IncrementalCompiler, compilePolicyCompact, expandCompiled, parsePolicy, type CompiledPolicy, type Policy, type Topology, type TopologyNode } from "../src/index.js";
import { CATEGORIES, loadCategory, withRegistrationOrder } from "./corpus.js";
import { SYNTHETIC_POLICY, syntheticTopology } from "./synthetic.js";

/** Long synchronous loops yield between steps so vitest's worker RPC is answered on a loaded machine (else "Timeout calling onTaskUpdate"). */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// Property: for random sequences of joins / leaves / changes, the incremental result equals
// a full compile of the same topology, and nodes not reported as touched keep their objects.

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RICH_POLICY = `{
  "groups": { "group:admins": ["user1@example.com"], "group:devs": ["user3@example.com", "user4@example.com", "user5"] },
  "tagOwners": { "tag:server": ["group:admins"], "tag:db": ["group:admins"], "tag:web": ["group:admins"], "tag:router": ["group:admins"], "tag:ci": ["group:admins"] },
  "hosts": { "corp": "10.0.0.0/8", "dbhost": "100.64.0.8", "low": "100.64.78.0/26" },
  "acls": [
    {"action": "accept", "src": ["group:devs"], "dst": ["tag:web:80,443", "tag:db:5432", "dbhost:22"]},
    {"action": "accept", "src": ["tag:web", "low"], "dst": ["tag:db:5432"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*", "low:8080"]},
    {"action": "accept", "src": ["tag:ci"], "dst": ["tag:server:22", "corp:443", "*:9100"]},
    {"action": "accept", "src": ["autogroup:tagged"], "proto": "icmp", "dst": ["autogroup:member:*"]},
    {"action": "accept", "src": ["user2@example.com"], "dst": ["tag:router:*", "10.1.0.0/16:*"]},
  ],
  "nodeAttrs": [{"target": ["tag:db"], "attr": ["disable-ipv4"]}, {"target": ["group:devs"], "attr": ["funnel"]}],
  "ssh": [
    {"action": "accept", "src": ["group:admins"], "dst": ["tag:server", "tag:db"], "users": ["root", "autogroup:nonroot"]},
    {"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot", "localpart:*@example.com"]},
    {"action": "accept", "src": ["tag:ci"], "dst": ["tag:web"], "users": ["deploy"]},
  ],
}`;

function addrOf(k: number): { ipv4: string; ipv6: string } {
  return { ipv4: `100.64.${(k >> 8) & 255}.${k & 255}`, ipv6: `fd7a:115c:a1e0::${(k + 1).toString(16)}` };
}

/** One random change: join (appended), change in place, or leave. */
function mutate(topo: Topology, rand: () => number, fresh: () => number): Topology {
  const nodes = { ...topo.nodes };
  const names = Object.keys(nodes);
  const users = topo.users.map((u) => u.name);
  const tags = ["tag:server", "tag:db", "tag:web", "tag:ci", "tag:router"];
  const pickTags = (): string[] => (rand() < 0.5 ? [] : [tags[Math.floor(rand() * tags.length)]]);
  // Addresses are unique (as allocated); sometimes a free one inside the policy's "low" host range.
  const used = new Set(Object.values(nodes).map((n) => n.ipv4));
  const addr = (k: number): { ipv4: string; ipv6: string } => {
    if (rand() < 0.15) {
      const free = [...Array(64).keys()].map((x) => x + 20000).filter((x) => !used.has(addrOf(x).ipv4));
      if (free.length) return addrOf(free[Math.floor(rand() * free.length)]);
    }
    return addrOf(k);
  };
  const mk = (k: number): TopologyNode => {
    const t = pickTags();
    const n: TopologyNode = { hostname: `n${k}`, ...addr(k), tags: t, routable_ips: [], approved_routes: [], id: k };
    if (t.length === 0) n.user = users[Math.floor(rand() * users.length)];
    if (rand() < 0.05) n.routable_ips = n.approved_routes = [`10.1.${k & 255}.0/24`];
    return n;
  };
  const r = rand();
  if (r < 0.45 || names.length < 3) {
    const k = fresh();
    nodes[`j${k}`] = mk(k);
  } else if (r < 0.9) {
    const name = names[Math.floor(rand() * names.length)];
    const old = nodes[name];
    const what = rand();
    if (what < 0.4) {
      const t = pickTags();
      nodes[name] = { ...old, tags: t, user: t.length === 0 ? users[Math.floor(rand() * users.length)] : undefined };
    } else if (what < 0.7 && old.tags?.length === 0) nodes[name] = { ...old, user: users[Math.floor(rand() * users.length)] };
    else nodes[name] = { ...old, ...addr(fresh()) };
  } else {
    delete nodes[names[Math.floor(rand() * names.length)]];
  }
  return { ...topo, nodes };
}

function check(policy: Policy, inc: IncrementalCompiler, topo: Topology, prev: CompiledPolicy | null): { compiled: CompiledPolicy; incremental: boolean } {
  const r = inc.compile(topo);
  const full = compilePolicyCompact(policy, topo, inc.opts);
  expect(expandCompiled(r.compiled)).toEqual(expandCompiled(full));
  if (r.touched && prev) {
    const touched = new Set(r.touched);
    const before = expandCompiled(prev);
    const after = expandCompiled(r.compiled);
    r.compiled.names.forEach((name, i) => {
      if (touched.has(i)) return;
      expect(i).toBeLessThan(prev.names.length);
      expect(after[name]).toEqual(before[name]);
      expect(r.compiled.nodes[i].packetFilter).toBe(prev.nodes[i].packetFilter);
    });
  }
  return { compiled: r.compiled, incremental: r.touched !== null };
}

describe("IncrementalCompiler", () => {
  for (const [label, text] of [
    ["synthetic policy", SYNTHETIC_POLICY],
    ["rich policy (hosts by IP, prefixes, nodeAttrs, localpart SSH)", RICH_POLICY],
    ["allow-all policy (no acls) with SSH", `{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}]}`],
  ] as const) {
    it(`equals a full compile over random joins/changes/leaves: ${label}`, async () => {
      const policy = parsePolicy(text);
      for (const seed of [1, 2, 3]) {
        const rand = prng(seed);
        let next = 1000;
        const fresh = (): number => next++;
        let topo = syntheticTopology(150, 12);
        const inc = new IncrementalCompiler(policy, { serverUrl: "https://x" });
        let prev: CompiledPolicy | null = null;
        let incremental = 0;
        for (let step = 0; step < 40; step++) {
          await yieldToEventLoop();
          const r = check(policy, inc, topo, prev);
          prev = r.compiled;
          if (r.incremental) incremental++;
          topo = mutate(topo, rand, fresh);
        }
        expect(incremental).toBeGreaterThan(15);
      }
    }, 120_000);
  }

  it("equals a full compile on corpus topologies (nodes joining one by one, then changing)", async () => {
    let cases = 0;
    for (const cat of CATEGORIES) {
      for (const c of loadCategory(cat)) {
        if (c.status !== 200) continue;
        await yieldToEventLoop();
        const text = typeof c.policy === "string" ? c.policy : JSON.stringify(c.policy);
        let policy: Policy;
        const full = withRegistrationOrder(c);
        try {
          policy = parsePolicy(text);
          compilePolicyCompact(policy, full);
        } catch {
          continue;
        }
        const names = Object.keys(full.nodes);
        const inc = new IncrementalCompiler(policy);
        let prev: CompiledPolicy | null = null;
        const rand = prng(names.length);
        for (let k = Math.max(1, names.length - 4); k <= names.length; k++) {
          const topo: Topology = { ...full, nodes: Object.fromEntries(names.slice(0, k).map((n) => [n, full.nodes[n]])) };
          prev = check(policy, inc, topo, prev).compiled;
        }
        let topo = full;
        for (let s = 0; s < 3; s++) {
          const name = names[Math.floor(rand() * names.length)];
          const n = topo.nodes[name];
          const tags = Object.values(full.nodes).flatMap((x) => x.tags ?? []);
          const swap: TopologyNode =
            n.tags && n.tags.length > 0 ? { ...n, tags: [], user: full.users[0]?.name } : { ...n, tags: tags.length ? [tags[Math.floor(rand() * tags.length)]] : [], user: n.user };
          topo = { ...topo, nodes: { ...topo.nodes, [name]: swap } };
          try {
            prev = check(policy, inc, topo, prev).compiled;
          } catch (e) {
            if ((e as { code?: string }).code === undefined) throw e;
          }
        }
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(50);
  }, 120_000);
});

describe("data checks run on save, not on data changes", () => {
  const TESTED = `{
    "tagOwners": {"tag:dns": ["user1@example.com"]},
    "acls": [{"action": "accept", "src": ["user1@example.com"], "dst": ["tag:dns:53"]}],
    "tests": [{"src": "user2@example.com", "accept": ["tag:dns:53"]}],
  }`;
  const topo = (): Topology => ({
    users: [{ id: 1, name: "user1", email: "user1@example.com" }, { id: 2, name: "user2", email: "user2@example.com" }],
    nodes: {
      dns: { ipv4: "100.64.0.1", ipv6: "fd7a:115c:a1e0::1", tags: ["tag:dns"], id: 1 },
      u1: { ipv4: "100.64.0.2", ipv6: "fd7a:115c:a1e0::2", user: "user1", id: 2 },
      u2: { ipv4: "100.64.0.3", ipv6: "fd7a:115c:a1e0::3", user: "user2", id: 3 },
    },
  });

  it("a failing `tests` entry rejects the policy on check, but compile (checks: false) and IncrementalCompiler.compile still compile", () => {
    const policy = parsePolicy(TESTED);
    expect(() => compilePolicyCompact(policy, topo())).toThrow(/test\(s\) failed/);
    expect(() => new IncrementalCompiler(policy).check(topo())).toThrow(/test\(s\) failed/);
    const c = compilePolicyCompact(policy, topo(), { checks: false });
    expect(c.names).toEqual(["dns", "u1", "u2"]);
    const r = new IncrementalCompiler(policy).compile(topo());
    expect(expandCompiled(r.compiled)).toEqual(expandCompiled(c));
  });

  it("IncrementalCompiler.check's compile is the state compile continues from (no second full compile)", () => {
    const policy = parsePolicy(TESTED.replace("user2@example.com", "user1@example.com"));
    const inc = new IncrementalCompiler(policy);
    const checked = inc.check(topo());
    const same = inc.compile(topo());
    expect(same.compiled).toBe(checked);
    expect(same.touched).toEqual([]);
    const t = topo();
    t.nodes.u4 = { ipv4: "100.64.0.4", ipv6: "fd7a:115c:a1e0::4", user: "user2", id: 4 };
    expect(inc.compile(t).touched).not.toBeNull();
  });
});
