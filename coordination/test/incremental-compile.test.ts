/**
 * The incremental policy compile on the benchmark's generated tailnet (rows → topologyFrom,
 * the server's path): for random joins, tag/user/address changes and leaves, the
 * IncrementalCompiler's result equals a full compile, and nodes it does not report as
 * touched keep their compiled view.
 */
import { describe, expect, it } from "vitest";
import { IncrementalCompiler, compilePolicyCompact, expandCompiled, parsePolicy } from "@lattice/policy";
import { topologyFrom } from "../src/services/topology.js";
// @ts-expect-error -- plain JS bench module without type declarations
import { generateTailnet, seededRandom } from "../bench/tailnet.mjs";

/** Long synchronous loops yield between steps so vitest's worker RPC is answered on a loaded machine (else "Timeout calling onTaskUpdate"). */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Row {
  id: number;
  tags: string;
  user_id: number | null;
  ipv4: string;
  ipv6: string;
  [k: string]: unknown;
}
interface Tailnet {
  users: { id: number; name: string }[];
  rows: Row[];
  policyText: string;
  serverUrl: string;
  mkRow: (kind: { user?: unknown; tags?: string[] }) => Row;
}

const TAGS = ["tag:prod", "tag:staging", "tag:db", "tag:web", "tag:ci", "tag:monitoring", "tag:k8s", "tag:intranet"];

describe("IncrementalCompiler on the bench tailnet", () => {
  it("equals a full compile over random joins, changes and leaves", async () => {
    const now = Date.UTC(2026, 10, 21);
    for (const seed of [3, 4]) {
      const rand: () => number = seededRandom(seed);
      const tn = generateTailnet({ nodes: 600, users: 20, rand, now }) as Tailnet;
      const policy = parsePolicy(tn.policyText.replace(/\n {2}"tests": \[[^]*?\n {2}\],/, ""));
      const inc = new IncrementalCompiler(policy, { serverUrl: tn.serverUrl });
      let rows = tn.rows.slice();
      let prev = null as ReturnType<typeof expandCompiled> | null;
      let incremental = 0;
      const pick = <T>(l: readonly T[]): T => l[Math.floor(rand() * l.length)];
      for (let step = 0; step < 30; step++) {
        await yieldToEventLoop();
        const topo = topologyFrom(tn.users as never, rows as never);
        const r = inc.compile(topo);
        const got = expandCompiled(r.compiled);
        expect(got).toEqual(expandCompiled(compilePolicyCompact(policy, topo, { serverUrl: tn.serverUrl })));
        if (r.touched && prev) {
          incremental++;
          const touched = new Set(r.touched.map((i) => r.compiled.names[i]));
          for (const name of Object.keys(prev)) if (!touched.has(name) && name in got) expect(got[name]).toEqual(prev[name]);
        }
        prev = got;
        const op = rand();
        if (op < 0.4) rows = [...rows, tn.mkRow(rand() < 0.5 ? { user: pick(tn.users) } : { tags: [pick(TAGS)] })];
        else if (op < 0.85) {
          const k = Math.floor(rand() * rows.length);
          const old = rows[k];
          const next: Row = rand() < 0.5 ? { ...old, tags: JSON.stringify([pick(TAGS)]), user_id: null } : { ...old, tags: "[]", user_id: pick(tn.users).id };
          rows = rows.map((x, i) => (i === k ? next : x));
        } else rows = rows.filter((_, i) => i !== Math.floor(rand() * rows.length));
      }
      expect(incremental).toBeGreaterThan(15);
    }
  }, 120_000);
});
