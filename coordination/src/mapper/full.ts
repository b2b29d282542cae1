/**
 * Full netmaps: (snapshot, node) → the first MapResponse of a stream. Pure: reads only
 * the {@link NetmapState} snapshot, never the database. Work per node is linear in the
 * number of peers it may see; peer Node objects are shared between netmaps (not copied)
 * unless the policy gives this viewer different AllowedIPs for that peer.
 */
import type { MapResponse, Node, NodeID, UserID, UserProfile } from "@lattice/types";
import type { NetmapState, NodePolicyView } from "./types.js";

/** The policy view of a node the policy does not know: sees nothing, accepts nothing. */
export const DENY_ALL_POLICY: NodePolicyView = Object.freeze({
  packetFilter: [],
  sshPolicy: null,
  peers: new Map<NodeID, readonly string[]>(),
});

/** Whether a node may appear as someone's peer. */
export function isVisiblePeer(n: Node | undefined): n is Node {
  return n !== undefined && n.MachineAuthorized !== false;
}

/** The node as it sees itself (its own CapMap from the policy's nodeAttrs). */
export function selfNode(self: Node, pol: NodePolicyView): Node {
  if (pol.capMap === undefined) return self;
  return { ...self, CapMap: { ...(self.CapMap ?? {}), ...pol.capMap } };
}

/** A peer as `viewer` sees it: the shared object, or a copy with viewer-specific AllowedIPs. */
export function peerFor(peer: Node, allowed: readonly string[]): Node {
  if (allowed === peer.AllowedIPs || sameStrings(allowed, peer.AllowedIPs)) return peer;
  return { ...peer, AllowedIPs: [...allowed] };
}

/** The peers `pol` lets a node see, in ascending ID order (as tailcfg clients expect). */
export function visiblePeers(state: NetmapState, selfId: NodeID, pol: NodePolicyView): Node[] {
  const out: Node[] = [];
  let sorted = true;
  let last = -Infinity;
  for (const [id, allowed] of pol.peers) {
    if (id === selfId) continue;
    const peer = state.nodes.get(id);
    if (!isVisiblePeer(peer)) continue;
    if (id < last) sorted = false;
    last = id;
    out.push(peerFor(peer, allowed));
  }
  if (!sorted) out.sort((a, b) => a.ID - b.ID);
  return out;
}

/** User profiles of `self` and `peers`, each once, in ascending ID order. */
export function profilesFor(state: NetmapState, self: Node, peers: readonly Node[]): UserProfile[] {
  const ids = new Set<UserID>();
  ids.add(self.User);
  for (const p of peers) ids.add(p.User);
  return profilesById(state, ids);
}

/** Profiles for a set of user ids (unknown ids skipped), ascending. */
export function profilesById(state: NetmapState, ids: Iterable<UserID>): UserProfile[] {
  const out: UserProfile[] = [];
  for (const id of ids) {
    const p = state.userProfiles.get(id);
    if (p) out.push(p);
  }
  out.sort((a, b) => a.ID - b.ID);
  return out;
}

/**
 * The full MapResponse for `nodeId`, or null when the node is not in the snapshot.
 * `omitPeers` (MapRequest.OmitPeers) leaves out Peers and UserProfiles of peers.
 */
export function fullMapResponse(state: NetmapState, nodeId: NodeID, opts: { omitPeers?: boolean } = {}): MapResponse | null {
  const self = state.nodes.get(nodeId);
  if (!self) return null;
  const pol = state.policyFor(nodeId) ?? DENY_ALL_POLICY;
  // The snapshot's shared per-peer-list answer when it has one (same result, no per-peer work).
  const fast = opts.omitPeers ? undefined : state.visiblePeersOf?.(nodeId);
  // A shared array when it comes from the fast path: MapResponses are never mutated after building.
  const peers = opts.omitPeers ? [] : ((fast?.nodes as Node[] | undefined) ?? visiblePeers(state, nodeId, pol));
  let profiles: UserProfile[];
  if (fast) {
    const ids = new Set(fast.users);
    ids.add(self.User);
    profiles = profilesById(state, ids);
  } else profiles = profilesFor(state, self, peers);
  const resp: MapResponse = {
    Node: selfNode(self, pol),
    DERPMap: state.derpMap,
    DNSConfig: state.dnsConfig,
    Domain: state.domain,
    PacketFilter: pol.packetFilter,
    UserProfiles: profiles,
  };
  if (!opts.omitPeers) resp.Peers = peers;
  if (pol.sshPolicy) resp.SSHPolicy = pol.sshPolicy;
  return resp;
}

/** Element-wise equality of two string lists. */
export function sameStrings(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
