/**
 * The mapper's inputs: the immutable netmap snapshot ({@link NetmapState}) and the one
 * change type of the server ({@link Change}). The mapper owns these types; the node API
 * (../nodeapi) and the services that produce them import them from here.
 */
import type { DERPMap, DNSConfig, FilterRule, Node, NodeCapMap, NodeID, SSHPolicy, UserID, UserProfile } from "@lattice/types";

/**
 * What the compiled policy says about one node, keyed by NodeID (compiled output is
 * matched to nodes by id, never by name).
 */
export interface NodePolicyView {
  /** The node's packet filter (rules whose destination is this node). */
  packetFilter: FilterRule[];
  /** The node's SSH policy, or null when it has no SSH rules. */
  sshPolicy: SSHPolicy | null;
  /**
   * Peers this node may see (it may talk to them or they to it), each with the
   * AllowedIPs this node should route to it. When the array is the same object as the
   * peer's `Node.AllowedIPs`, the mapper reuses the shared peer object (no copy).
   */
  peers: ReadonlyMap<NodeID, readonly string[]>;
  /** Extra capabilities for this node's self `Node.CapMap` (nodeAttrs), if any. */
  capMap?: NodeCapMap;
}

/** A node's visible peers, as {@link NetmapState.visiblePeersOf} gives them. */
export interface VisiblePeers {
  /** Peer Node objects as this node sees them, ascending by ID. */
  readonly nodes: readonly Node[];
  /** The user ids of `nodes` (possibly also of the node itself). */
  readonly users: ReadonlySet<UserID>;
}

/**
 * An immutable snapshot of everything the mapper needs. Producing it must be cheap
 * (the backend keeps it in memory and replaces it on every change; nodes and profiles
 * unchanged since the previous snapshot should be the same objects).
 */
export interface NetmapState {
  /** Monotonic; increases with every published change. */
  readonly version: number;
  /** The tailnet's MagicDNS domain, e.g. "tailnet.example" (no trailing dot). */
  readonly domain: string;
  readonly derpMap: DERPMap;
  readonly dnsConfig: DNSConfig;
  /**
   * Every node that may appear in a netmap, rendered as tailcfg Nodes as peers see them
   * (Addresses, AllowedIPs incl. approved primary routes, Endpoints, HomeDERP, Hostinfo,
   * Online, LastSeen, KeyExpiry, Expired, MachineAuthorized, Tags, PrimaryRoutes…).
   * Nodes awaiting approval are absent (or MachineAuthorized false: the mapper skips them as peers).
   */
  readonly nodes: ReadonlyMap<NodeID, Node>;
  /** Users by id, for MapResponse.UserProfiles. */
  readonly userProfiles: ReadonlyMap<UserID, UserProfile>;
  /** The compiled policy for one node; undefined = node unknown (treated as deny-all). */
  policyFor(nodeId: NodeID): NodePolicyView | undefined;
  /**
   * Optional fast path for full netmaps: what iterating `policyFor(nodeId).peers` gives
   * (visible peers in ascending ID order, each as the mapper's `peerFor` renders it) and
   * their user ids; both may be shared between nodes (callers must not mutate them).
   * Undefined when the backend has no faster answer; the mapper then iterates `peers`.
   */
  visiblePeersOf?(nodeId: NodeID): VisiblePeers | undefined;
  /**
   * True when a node's `packetFilter` array and `sshPolicy.rules` array are the same objects
   * as in earlier snapshots for as long as their content is unchanged, so the mapper may
   * treat a different object as changed content without serializing it (an occasional
   * new object with unchanged content only costs a resend). Absent = false.
   */
  readonly policyInterned?: boolean;
}

/**
 * What changed — the server's one change type (headscale's change.Change): services
 * publish it on the change bus, the node backend merges what accumulated
 * ({@link mergeChanges}), applies it to its snapshot, adds what only it can know (nodes
 * whose compiled policy view changed, nodes that became visible or must disconnect) and
 * hands it to the map streams as a {@link VersionedChange}; {@link MapSession} turns it
 * into per-node deltas. Absent/empty lists = nothing of that kind; kinds combine freely.
 */
export interface Change {
  /** Nodes that joined (or became authorized/visible). */
  nodesAdded?: NodeID[];
  /** Nodes deleted, logged out, or no longer visible to anyone. */
  nodesRemoved?: NodeID[];
  /** Nodes whose Node object changed beyond endpoints (key rotation, name, tags, hostinfo, expiry, routes, approval). */
  nodesChanged?: NodeID[];
  /** Nodes whose endpoints, disco key or home DERP changed (sent as PeersChangedPatch). */
  endpointsChanged?: NodeID[];
  /** Online status flips (sent as OnlineChange). */
  online?: ReadonlyMap<NodeID, boolean>;
  /**
   * The policy (or what it is compiled against) changed for every node: filters, SSH
   * policies and peer sets are re-diffed everywhere. The node backend consumes it and
   * publishes {@link policyChangedFor} instead.
   */
  policyChanged?: boolean;
  /** The compiled policy changed only for these nodes (cheaper than `policyChanged`). */
  policyChangedFor?: NodeID[];
  /** The DERP map changed. */
  derpMapChanged?: boolean;
  /** DNS config or domain changed. */
  dnsChanged?: boolean;
  /** Users were created, deleted or renamed (profiles in netmaps; owners for the compiler). */
  userProfilesChanged?: boolean;
  /**
   * Nodes whose own map session must end now (deleted, key expired, logged out,
   * disabled): their streams are closed so the client re-registers.
   */
  disconnect?: NodeID[];
}

/** A change applied to a snapshot: `version` is the {@link NetmapState.version} that includes it. */
export type VersionedChange = Change & { readonly version: number };

const LISTS = ["nodesAdded", "nodesRemoved", "nodesChanged", "endpointsChanged", "policyChangedFor", "disconnect"] as const;
const FLAGS = ["policyChanged", "derpMapChanged", "dnsChanged", "userProfilesChanged"] as const;

/**
 * Merges changes in the order they happened into one: id lists are united (each id once,
 * in first-seen order), flags ORed, the last online state of a node wins. A node added
 * and changed counts as added; a node added, changed or patched and then removed counts
 * as removed only; a node changed and patched counts as changed.
 */
export function mergeChanges(changes: Iterable<Change>): Change {
  const lists = new Map<(typeof LISTS)[number], Set<NodeID>>();
  const online = new Map<NodeID, boolean>();
  const out: Change = {};
  for (const c of changes) {
    for (const k of LISTS) {
      const ids = c[k];
      if (!ids || ids.length === 0) continue;
      let s = lists.get(k);
      if (!s) lists.set(k, (s = new Set()));
      for (const id of ids) s.add(id);
    }
    for (const k of FLAGS) if (c[k]) out[k] = true;
    if (c.online) for (const [id, on] of c.online) online.set(id, on);
  }
  const removed = lists.get("nodesRemoved") ?? new Set<NodeID>();
  const added = lists.get("nodesAdded") ?? new Set<NodeID>();
  const changed = lists.get("nodesChanged") ?? new Set<NodeID>();
  const keep = (k: (typeof LISTS)[number], drop: (id: NodeID) => boolean): void => {
    const ids = [...(lists.get(k) ?? [])].filter((id) => !drop(id));
    if (ids.length > 0) out[k] = ids;
  };
  keep("nodesAdded", (id) => removed.has(id));
  keep("nodesRemoved", () => false);
  keep("nodesChanged", (id) => removed.has(id) || added.has(id));
  keep("endpointsChanged", (id) => removed.has(id) || added.has(id) || changed.has(id));
  keep("policyChangedFor", (id) => removed.has(id));
  keep("disconnect", () => false);
  for (const id of removed) online.delete(id);
  if (online.size > 0) out.online = online;
  return out;
}
