/** The CLI entry: `lattice-control policy compile --policy FILE --topology FILE [--node NAME]`. */
import { compilePolicy } from "./compile.js";
import { PolicyError } from "./errors.js";
import { parsePolicy } from "./parse.js";
import type { Topology } from "./topology.js";

/**
 * Compiles a policy text against a topology JSON text; returns pretty JSON of every node's
 * result, or of one node's when `node` is given. Throws PolicyError for a bad policy,
 * topology or unknown node.
 */
export function compileFiles(policyText: string, topologyJson: string, node?: string, serverUrl?: string): string {
  const policy = parsePolicy(policyText);
  let topology: Topology;
  try {
    topology = JSON.parse(topologyJson) as Topology;
  } catch (e) {
    throw new PolicyError("invalid-topology", `topology: invalid JSON: ${(e as Error).message}`);
  }
  const out = compilePolicy(policy, topology, serverUrl ? { serverUrl } : {});
  if (node === undefined) return JSON.stringify(out, null, 2);
  const one = out[node];
  if (!one) throw new PolicyError("invalid-topology", `node ${JSON.stringify(node)} is not in the topology`);
  return JSON.stringify(one, null, 2);
}
