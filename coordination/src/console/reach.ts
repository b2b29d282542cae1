/**
 * The machine detail page's "Access": which machines the policy lets this one reach and be
 * reached from, read from a compile of the current policy (packet filters: a node may be
 * reached from the sources of its own filter's rules). A whole-tailnet compile per page
 * view is affordable for small tailnets only, so above {@link MAX_REACH_NODES} approved
 * nodes the page points to the Access controls preview instead.
 */
import { compilePolicy } from "@lattice/policy";
import type { Control } from "../app.js";
import type { NodeRow } from "../db/schema.js";
import { loadTopology } from "../services/topology.js";
import type { ReachFacts } from "./machines.js";

/** Largest tailnet whose access the detail page computes. */
export const MAX_REACH_NODES = 1000;

function v4(ip: string): number | null {
  const p = ip.split(".");
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return null;
  return p.reduce((a, o) => a * 256 + Number(o), 0);
}

/** Whether a filter SrcIPs entry ("*", an address, an IPv4 prefix or range) holds the IPv4 `ip`. */
export function srcHolds(entry: string, ip: string): boolean {
  if (entry === "*" || entry === ip) return true;
  const n = v4(ip);
  if (n == null) return false;
  const dash = entry.indexOf("-");
  if (dash > 0) {
    const lo = v4(entry.slice(0, dash));
    const hi = v4(entry.slice(dash + 1));
    return lo != null && hi != null && lo <= n && n <= hi;
  }
  const [base, bitsText] = entry.split("/");
  const b = v4(base ?? "");
  const bits = Number(bitsText);
  if (b == null || bitsText === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(b / size) === Math.floor(n / size);
}

/** What the current policy lets node `n` reach and be reached from. */
export async function reachOf(c: Control, n: NodeRow): Promise<ReachFacts> {
  if (!n.approved) return { canReach: [], reachableFrom: [], note: "Not approved yet: it has no access." };
  const health = c.policies.health();
  if (!health.ok) return { canReach: [], reachableFrom: [], note: `The policy does not compile (${health.message}): every machine is cut off.` };
  const topology = await loadTopology(c.ctx);
  const names = Object.keys(topology.nodes);
  if (names.length > MAX_REACH_NODES) return { canReach: [], reachableFrom: [], note: `More than ${MAX_REACH_NODES} machines: use the preview on Access controls.` };
  const compiled = compilePolicy((await c.policies.current()).policy, topology, { serverUrl: c.ctx.options.serverUrl });
  const own = compiled[n.given_name];
  if (!own) return { canReach: [], reachableFrom: [], note: "Not in the compiled tailnet." };
  const admits = (filterOf: string, ip: string) => (compiled[filterOf]?.packetFilter ?? []).some((r) => (r.SrcIPs ?? []).some((e) => srcHolds(e, ip)));
  const reachableFrom = names.filter((m) => m !== n.given_name && admits(n.given_name, topology.nodes[m]!.ipv4));
  const canReach = names.filter((m) => m !== n.given_name && admits(m, n.ipv4));
  return { canReach, reachableFrom, note: null };
}
