/** Loading and comparing the Tailscale policy conformance corpus (test helper). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PolicyError, applyAutoApprovers, compilePolicy, parsePolicy, type NodeCompiled, type Topology } from "../src/index.js";

/** One corpus case. */
export interface CorpusCase {
  id: string;
  category: string;
  description?: string;
  policy: unknown;
  status: number;
  error?: string;
  /** Lattice's own cases: the field path the rejection must name. */
  errorField?: string;
  topology: Topology;
  expect?: Record<string, Partial<NodeCompiled>>;
}

/** The corpus categories (file names without .json). */
export const CATEGORIES = ["acl", "grant", "ssh", "routes", "nodeattrs", "policytest", "sshtest"] as const;

/**
 * The captured corpus shipped in the repo: `test/corpus/tailscale/` (what Tailscale's
 * control plane compiled; origin and license in its README.md).
 */
export function corpusDir(): string {
  return fileURLToPath(new URL("./corpus/tailscale/", import.meta.url));
}

/**
 * Lattice's own corpus-style cases (same shape), written from Tailscale's documentation
 * for kinds of policy the captures do not contain: `test/corpus/lattice/`.
 */
export function ownCorpusDir(): string {
  return fileURLToPath(new URL("./corpus/lattice/", import.meta.url));
}

/** Loads one category. */
export function loadCategory(name: string, dir: string = corpusDir()): CorpusCase[] {
  return JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8")) as CorpusCase[];
}

function canon(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canon).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canon(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

function sortedCanon(list: readonly unknown[]): string[] {
  return list.map(canon).sort();
}

function normRule(r: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  if (r.SrcIPs) out.SrcIPs = [...(r.SrcIPs as string[])].sort();
  if (r.DstPorts) out.DstPorts = sortedCanon(r.DstPorts as unknown[]);
  if (r.IPProto) out.IPProto = [...(r.IPProto as number[])].sort((a, b) => a - b);
  if (r.CapGrant) {
    out.CapGrant = sortedCanon(
      (r.CapGrant as { Dsts: string[]; CapMap: unknown }[]).map((g) => ({ Dsts: [...g.Dsts].sort(), CapMap: g.CapMap })),
    );
  }
  return canon(out);
}

function normSsh(r: Record<string, unknown>): string {
  const principals = ((r.principals as unknown[]) ?? []).map(canon).sort();
  return canon({ ...r, principals });
}

/** Differences between the compiled result and the expectation of one node (empty when equal). */
export function diffNode(want: Partial<NodeCompiled>, got: NodeCompiled | undefined): string[] {
  if (!got) return ["node missing from output"];
  const diffs: string[] = [];
  const pf = (x: unknown[] | undefined): string[] => (x ?? []).map((r) => normRule(r as Record<string, unknown>)).sort();
  const wantPf = pf(want.packetFilter);
  const gotPf = pf(got.packetFilter);
  if (canon(wantPf) !== canon(gotPf)) diffs.push(`packetFilter:\n  want ${wantPf.join("\n       ")}\n  got  ${gotPf.join("\n       ")}`);
  const ws = (want.ssh ?? []).map((r) => normSsh(r as unknown as Record<string, unknown>));
  const gs = (got.ssh ?? []).map((r) => normSsh(r as unknown as Record<string, unknown>));
  if (canon(ws) !== canon(gs)) diffs.push(`ssh:\n  want ${ws.join("\n       ")}\n  got  ${gs.join("\n       ")}`);
  const np = (p: Record<string, string[]> | undefined): string =>
    canon(Object.fromEntries(Object.entries(p ?? {}).map(([k, v]) => [k, [...v].sort()])));
  if (np(want.peers) !== np(got.peers)) diffs.push(`peers:\n  want ${np(want.peers)}\n  got  ${np(got.peers)}`);
  const pr = (x: string[] | undefined): string => canon([...(x ?? [])].sort());
  if (pr(want.primaryRoutes) !== pr(got.primaryRoutes)) diffs.push(`primaryRoutes: want ${pr(want.primaryRoutes)} got ${pr(got.primaryRoutes)}`);
  if (want.capMap !== undefined && canon(want.capMap) !== canon(got.capMap ?? {})) {
    diffs.push(`capMap:\n  want ${canon(want.capMap)}\n  got  ${canon(got.capMap ?? {})}`);
  }
  return diffs;
}

/**
 * The capture does not record node registration order, which decides the primary among
 * routers serving the same subnet (HA). The control plane's election is visible in the
 * capture's primaryRoutes, so the harness supplies that order as the nodes' `id`:
 * nodes the capture shows as primary for something registered first. Everything else
 * the election drives (which routes peers receive) is still computed by the compiler.
 */
export function withRegistrationOrder(c: CorpusCase): Topology {
  const nodes: Topology["nodes"] = {};
  Object.entries(c.topology.nodes).forEach(([name, n], i) => {
    const primary = (c.expect?.[name]?.primaryRoutes ?? []).length > 0;
    nodes[name] = { ...n, id: (primary ? 0 : 1000) + i };
  });
  return { ...c.topology, nodes };
}

/** Runs one case; returns the list of differences (empty = pass). */
export function runCase(c: CorpusCase): string[] {
  const text = typeof c.policy === "string" ? c.policy : JSON.stringify(c.policy);
  let out: Record<string, NodeCompiled>;
  try {
    // The captures record the state after Tailscale's server auto-approved advertised
    // routes; the compiler reads approvals as given, so the harness applies that step.
    const policy = parsePolicy(text);
    out = compilePolicy(policy, applyAutoApprovers(policy, withRegistrationOrder(c)), { serverUrl: "https://unused" });
  } catch (e) {
    if (!(e instanceof PolicyError)) return [`compiler crashed: ${(e as Error).stack ?? String(e)}`];
    if (c.status !== 200) {
      if (c.errorField !== undefined && e.field !== c.errorField) return [`rejected naming field ${String(e.field)}, expected ${c.errorField}: ${e.message}`];
      return [];
    }
    return [`rejected but the service accepted it: ${(e as Error).message}`];
  }
  if (c.status !== 200) return [`accepted but the service rejected it (${c.status}: ${c.error ?? ""})`];
  const diffs: string[] = [];
  for (const [node, want] of Object.entries(c.expect ?? {})) {
    for (const d of diffNode(want, out[node])) diffs.push(`${node}: ${d}`);
  }
  return diffs;
}
