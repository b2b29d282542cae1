/**
 * The compiler's compact output ({@link CompiledPolicy}): per node index, a peer list
 * shared by every node with the same peer set and shared AllowedIPs arrays, and its
 * expansion into the name-keyed {@link NodeCompiled} record (one code path for both).
 */
import type { FilterRule, SSHRule } from "@lattice/types";

/** What one node receives. */
export interface NodeCompiled {
  /** Packet filter rules for traffic to this node. */
  packetFilter: FilterRule[];
  /** SSH rules (absent when the policy gives this node none). */
  ssh?: SSHRule[];
  /** Visible peers: name → AllowedIPs (addresses, primary routes, exit routes). */
  peers: Record<string, string[]>;
  /** Subnet routes this node is primary for (absent when none). */
  primaryRoutes?: string[];
  /** Node capabilities (absent when there are none). */
  capMap?: Record<string, unknown[] | null>;
}

/** One node's visible peers in compact form. */
export interface CompactPeers {
  /**
   * Topology indexes of the visible peers, ascending. Shared (same array object) between
   * nodes with the same peer set, so it may contain the node's own index: skip it.
   */
  readonly list: readonly number[];
  /**
   * AllowedIPs this viewer gets where they differ from {@link CompiledPolicy.baseAllowed}
   * (primary routes, via steering, disable-ipv4); null when none differ.
   */
  readonly overrides: ReadonlyMap<number, readonly string[]> | null;
}

/** One node's compiled policy, compact form (peers by topology index). */
export interface CompactNode {
  /** Packet filter rules for traffic to this node (SrcIPs arrays are shared between nodes). */
  packetFilter: FilterRule[];
  /** SSH rules (absent when none; principals arrays are shared between nodes). */
  ssh?: SSHRule[];
  /** Visible peers. */
  peers: CompactPeers;
  /** Subnet routes this node is primary for (absent when none). */
  primaryRoutes?: string[];
  /** Node capabilities (absent when there are none). */
  capMap?: Record<string, unknown[] | null>;
}

/** The whole compilation, indexed by topology position. */
export interface CompiledPolicy {
  /** Node names by topology index. */
  readonly names: readonly string[];
  /** Topology ids (`TopologyNode.id`, undefined when absent) by topology index. */
  readonly ids: readonly (number | undefined)[];
  /** Compiled node by topology index. */
  readonly nodes: readonly CompactNode[];
  /** Each node's AllowedIPs as a peer when nothing viewer-specific applies (frozen, shared). */
  readonly baseAllowed: readonly (readonly string[])[];
}

/** The AllowedIPs `viewer` (index) gets for peer `j`. */
export function allowedFor(c: CompiledPolicy, viewer: number, j: number): readonly string[] {
  return c.nodes[viewer].peers.overrides?.get(j) ?? c.baseAllowed[j];
}

/** Expands the compact form into the name-keyed record (`compileFiles`, the conformance corpus). */
export function expandCompiled(c: CompiledPolicy): Record<string, NodeCompiled> {
  const out: Record<string, NodeCompiled> = {};
  c.nodes.forEach((n, i) => {
    const peers: Record<string, string[]> = {};
    const ov = n.peers.overrides;
    for (const j of n.peers.list) {
      if (j !== i) peers[c.names[j]] = (ov?.get(j) ?? c.baseAllowed[j]) as string[];
    }
    const nc: NodeCompiled = { packetFilter: n.packetFilter, peers };
    if (n.ssh) nc.ssh = n.ssh;
    if (n.primaryRoutes) nc.primaryRoutes = n.primaryRoutes;
    if (n.capMap) nc.capMap = n.capMap;
    out[c.names[i]] = nc;
  });
  return out;
}
