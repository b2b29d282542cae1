/**
 * The compact policy path (compilePolicyCompact → policy views → full netmaps → change
 * diff) against the name-keyed record form, on the bench's generated tailnet (groups,
 * tags, autogroup:self, SSH, subnet routers whose routes give viewer-specific AllowedIPs).
 */
import { describe, expect, it } from "vitest";
import { compilePolicyCompact, expandCompiled, parsePolicy, type CompiledPolicy } from "@lattice/policy";
import type { NodeID } from "@lattice/types";
// @ts-expect-error: plain ESM benchmark helper without type declarations
import { generateTailnet, seededRandom } from "../bench/tailnet.mjs";
import { buildState, type StateInputs } from "../src/services/netmap-state.js";
import { topologyFrom } from "../src/services/topology.js";
import { changedNodes, idsOf } from "../src/services/policy-diff.js";
import { fullMapResponse } from "../src/mapper/full.js";
import { MapSession } from "../src/mapper/session.js";
import type { NodeRow } from "../src/db/schema.js";

const now = Date.UTC(2026, 10, 21, 12, 0, 0);

function tailnet(nodes: number) {
  const tn = generateTailnet({ nodes, users: 12, rand: seededRandom(7), now });
  const policy = parsePolicy((tn.policyText as string).replace(/\n {2}"tests": \[[^]*?\n {2}\],/, ""));
  const inputs = (rows: NodeRow[], version: number): StateInputs => ({
    version,
    domain: tn.domain,
    derpMap: { Regions: {} },
    dnsConfig: { Resolvers: [], Domains: [tn.domain], Proxied: true },
    users: tn.users,
    rows,
    now,
  });
  /** The running server's full compile (NetmapBuilder with incrementalCompile: false). */
  const compileFor = (i: StateInputs): CompiledPolicy => compilePolicyCompact(policy, topologyFrom(i.users, i.rows), { checks: false });
  return { tn, policy, inputs, compileFor };
}

describe("compact policy views", () => {
  it("give every node exactly the peers and AllowedIPs of the record form, and the same full netmap on the fast path", () => {
    const { tn, inputs, compileFor } = tailnet(300);
    const rows = tn.rows as NodeRow[];
    const compiled = compileFor(inputs(rows, 1));
    const record = expandCompiled(compiled);
    const state = buildState(inputs(rows, 1), compiled, new Map());
    const slow = { ...state, visiblePeersOf: undefined };
    const idByName = new Map(rows.map((r) => [r.given_name, r.id]));
    let overrides = 0;
    for (const r of rows) {
      const want = record[r.given_name];
      const view = state.policyFor(r.id);
      if (!want) {
        expect(view).toBeUndefined();
        continue;
      }
      const expected = new Map(Object.entries(want.peers).map(([name, allowed]) => [idByName.get(name)!, allowed]));
      const got = new Map(view!.peers);
      expect(got).toEqual(expected);
      expect(view!.peers.size).toBe(expected.size);
      for (const [id, allowed] of expected) {
        expect(view!.peers.has(id)).toBe(true);
        expect(view!.peers.get(id)).toEqual(allowed);
      }
      expect(view!.peers.has(r.id)).toBe(false);
      expect([...view!.peers.keys()]).toEqual([...expected.keys()].sort((a, b) => a - b));
      if (compiled.nodes[compiled.names.indexOf(r.given_name)].peers.overrides) overrides++;
      expect(fullMapResponse(state, r.id)).toEqual(fullMapResponse(slow, r.id));
    }
    // The tailnet has subnet routers: some viewers get viewer-specific AllowedIPs.
    expect(overrides).toBeGreaterThan(0);
  });

  it("a join reports every node whose compiled output changed and keeps unchanged filters as the same objects", () => {
    const { tn, inputs, compileFor } = tailnet(300);
    const rows = tn.rows as NodeRow[];
    const before = compileFor(inputs(rows, 1));
    const beforeRecord = JSON.parse(JSON.stringify(expandCompiled(before)));
    const ids0 = idsOf(before);
    for (const extra of [tn.mkRow({ user: tn.users[0] }), tn.mkRow({ tags: ["tag:prod"] })]) {
      const rows2 = [...rows, extra as NodeRow];
      const after = compileFor(inputs(rows2, 2));
      const afterRecord = JSON.parse(JSON.stringify(expandCompiled(after)));
      const ids1 = idsOf(after);
      const changed = new Set<NodeID>(changedNodes({ compiled: before, idOf: ids0 }, { compiled: after, idOf: ids1 }));
      let same = 0;
      for (const r of rows2) {
        const differs = JSON.stringify(beforeRecord[r.given_name]) !== JSON.stringify(afterRecord[r.given_name]);
        if (differs) expect(changed.has(r.id), r.given_name).toBe(true);
        const j0 = before.names.indexOf(r.given_name);
        const j1 = after.names.indexOf(r.given_name);
        if (j0 >= 0 && j1 >= 0 && JSON.stringify(before.nodes[j0].packetFilter) === JSON.stringify(after.nodes[j1].packetFilter)) {
          expect(after.nodes[j1].packetFilter).toBe(before.nodes[j0].packetFilter);
          same++;
        }
      }
      expect(changed.has(extra.id)).toBe(true);
      expect(same).toBeGreaterThan(0);
      // Scoped: far from everyone.
      expect(changed.size).toBeLessThan(rows2.length);
    }
  });

  it("sessions re-diff to the same deltas on the fast path as by iterating the views", () => {
    const { tn, inputs, compileFor } = tailnet(200);
    const rows = tn.rows as NodeRow[];
    const c1 = compileFor(inputs(rows, 1));
    const s1 = buildState(inputs(rows, 1), c1, new Map());
    const slow1 = { ...s1, visiblePeersOf: undefined };
    const fastSessions = rows.map((r) => new MapSession(r.id));
    const slowSessions = rows.map((r) => new MapSession(r.id));
    fastSessions.forEach((x) => x.full(s1));
    slowSessions.forEach((x) => x.full(slow1));
    // A join and a removal (a router among them, so AllowedIPs overrides change too).
    const extra = tn.mkRow({ tags: ["tag:prod"] }) as NodeRow;
    const gone = rows.find((r) => r.hostinfo.includes("RoutableIPs")) ?? rows[1];
    const rows2 = [...rows.filter((r) => r !== gone), extra];
    const c2 = compileFor(inputs(rows2, 2));
    const s2 = buildState(inputs(rows2, 2), c2, new Map());
    const slow2 = { ...s2, visiblePeersOf: undefined };
    const change = { version: 2, nodesAdded: [extra.id], nodesRemoved: [gone.id], policyChanged: true };
    let withPeers = 0;
    rows.forEach((r, i) => {
      const f = fastSessions[i].delta(change, s2);
      const w = slowSessions[i].delta(change, slow2);
      expect(f).toEqual(w);
      if (f.response?.PeersChanged?.length || f.response?.PeersRemoved?.length) withPeers++;
    });
    expect(withPeers).toBeGreaterThan(0);
  });
});
