/**
 * Per-stream mapper state: remembers what one node was last sent (peer set, filter,
 * SSH policy, user profiles) and turns {@link VersionedChange}s into delta MapResponses.
 * Pure and synchronous; no I/O, no clock. Cost per change set is proportional to what
 * the change touches, except a policy change, which re-diffs this node's peer set.
 */
import type { MapResponse, Node, NodeID, PeerChange, UserID } from "@lattice/types";
import type { NetmapState, NodePolicyView, VersionedChange } from "./types.js";
import { DENY_ALL_POLICY, fullMapResponse, isVisiblePeer, peerFor, profilesById, selfNode } from "./full.js";

/** What a change set means for one stream. */
export interface DeltaResult {
  /** The delta to send, or null when nothing relevant changed. */
  response: MapResponse | null;
  /** The stream must end (node deleted, expired, logged out, disabled). */
  close: boolean;
}

const NOTHING: DeltaResult = Object.freeze({ response: null, close: false });

/** One node's map stream, from the mapper's point of view. */
export class MapSession {
  /** The node this stream serves. */
  readonly nodeId: NodeID;
  private readonly omitPeers: boolean;
  /**
   * Peers last sent, ascending by ID (a sorted array: ~8 bytes per peer instead of a Map
   * entry). Starts as the full map's own Peers array and is copied before the first change.
   */
  private sent: readonly Node[] = [];
  /** Whether {@link sent} is this session's own array (not the full map's Peers). */
  private sentOwned = false;
  private sentUsers = new Set<UserID>();
  /** Last filter / SSH policy sent (by reference; JSON compared only when the reference changes). */
  private sentFilter: unknown = undefined;
  private sentSsh: unknown = undefined;
  private sentSelf: Node | undefined;
  private version = -1;

  /** A session for `nodeId`; `omitPeers` as MapRequest.OmitPeers. */
  constructor(nodeId: NodeID, opts: { omitPeers?: boolean } = {}) {
    this.nodeId = nodeId;
    this.omitPeers = opts.omitPeers ?? false;
  }

  /** The snapshot version this session has caught up with. */
  get stateVersion(): number {
    return this.version;
  }

  /** The full netmap; resets what the session remembers. Null when the node is unknown. */
  full(state: NetmapState): MapResponse | null {
    const resp = fullMapResponse(state, this.nodeId, { omitPeers: this.omitPeers });
    this.version = state.version;
    if (!resp) return null;
    this.sent = resp.Peers ?? [];
    this.sentOwned = false;
    this.sentUsers = new Set((resp.UserProfiles ?? []).map((u) => u.ID));
    this.sentFilter = resp.PacketFilter;
    this.sentSsh = resp.SSHPolicy ?? null;
    this.sentSelf = resp.Node;
    return resp;
  }

  /** The delta for `change` against the new snapshot `state` (stale change sets are ignored). */
  delta(change: VersionedChange, state: NetmapState): DeltaResult {
    if (change.version <= this.version) return NOTHING;
    this.version = change.version;
    const me = this.nodeId;
    if (change.disconnect?.includes(me)) return { response: null, close: true };
    const self = state.nodes.get(me);
    if (!self) return { response: null, close: true };
    const pol = state.policyFor(me) ?? DENY_ALL_POLICY;
    const resp: MapResponse = {};
    const changed = new Map<NodeID, Node>();
    const removed = new Set<NodeID>();

    const policyHit = change.policyChanged === true || (change.policyChangedFor?.includes(me) ?? false);
    if (policyHit && !this.omitPeers) this.rediffPeers(state, pol, changed, removed);
    if (policyHit) {
      // Interned snapshots give content-equal filters/SSH rules the same object: no JSON needed.
      const interned = state.policyInterned === true;
      if (!sameValue(pol.packetFilter ?? [], this.sentFilter ?? [], interned)) resp.PacketFilter = pol.packetFilter;
      this.sentFilter = pol.packetFilter;
      const ssh = pol.sshPolicy;
      if (!sameSsh(ssh ?? null, (this.sentSsh ?? null) as NodePolicyView["sshPolicy"], interned)) resp.SSHPolicy = ssh ?? { rules: [] };
      this.sentSsh = ssh;
    }

    if (!this.omitPeers) {
      for (const id of change.nodesAdded ?? []) this.considerPeer(state, pol, id, changed, removed, false);
      for (const id of change.nodesChanged ?? []) this.considerPeer(state, pol, id, changed, removed, true);
      for (const id of change.nodesRemoved ?? []) {
        if (this.hasSent(id)) removed.add(id);
      }
    }

    // Self: resend when it changed (keys, name, tags, expiry, routes) or its capabilities did.
    const newSelf = selfNode(self, pol);
    if (newSelf !== this.sentSelf && (change.nodesChanged?.includes(me) || policyHit || change.nodesAdded?.includes(me))) {
      if (JSON.stringify(newSelf) !== JSON.stringify(this.sentSelf)) resp.Node = newSelf;
      this.sentSelf = newSelf;
    }

    // Apply peer additions/changes/removals to the remembered set.
    for (const id of removed) changed.delete(id);
    if (removed.size > 0 || changed.size > 0) this.applySent(changed, removed);
    if (changed.size > 0) resp.PeersChanged = [...changed.values()].sort((a, b) => a.ID - b.ID);
    if (removed.size > 0) resp.PeersRemoved = [...removed].sort((a, b) => a - b);

    // Small patches for peers that are (still) visible and not resent in full.
    const patches: PeerChange[] = [];
    for (const id of change.endpointsChanged ?? []) {
      if (changed.has(id) || !this.hasSent(id)) continue;
      const peer = state.nodes.get(id);
      if (!peer) continue;
      const patch: PeerChange = { NodeID: id, Endpoints: peer.Endpoints ?? [], DERPRegion: peer.HomeDERP ?? 0 };
      if (peer.DiscoKey) patch.DiscoKey = peer.DiscoKey;
      patches.push(patch);
      this.replaceSent(id, peerFor(peer, pol.peers.get(id) ?? peer.AllowedIPs));
    }
    if (patches.length > 0) resp.PeersChangedPatch = patches;
    if (change.online) {
      const online: Record<string, boolean> = {};
      let any = false;
      for (const [id, on] of change.online) {
        if (id === me || changed.has(id) || !this.hasSent(id)) continue;
        online[String(id)] = on;
        any = true;
      }
      if (any) resp.OnlineChange = online;
    }

    if (change.derpMapChanged) resp.DERPMap = state.derpMap;
    if (change.dnsChanged) {
      resp.DNSConfig = state.dnsConfig;
      resp.Domain = state.domain;
    }
    // User profiles: all when they changed, otherwise only users new to this node.
    if (change.userProfilesChanged) {
      const users = new Set<UserID>([self.User]);
      for (const p of this.sent) users.add(p.User);
      this.sentUsers = users;
      resp.UserProfiles = profilesById(state, users);
    } else if (changed.size > 0 || resp.Node) {
      const fresh = new Set<UserID>();
      for (const p of changed.values()) if (!this.sentUsers.has(p.User)) fresh.add(p.User);
      if (!this.sentUsers.has(self.User)) fresh.add(self.User);
      if (fresh.size > 0) {
        for (const u of fresh) this.sentUsers.add(u);
        resp.UserProfiles = profilesById(state, fresh);
      }
    }

    return Object.keys(resp).length === 0 ? NOTHING : { response: resp, close: false };
  }

  /** Index of peer `id` in {@link sent}, or -1. */
  private indexOfSent(id: NodeID): number {
    const list = this.sent;
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = list[mid].ID;
      if (v === id) return mid;
      if (v < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Whether peer `id` was sent. */
  private hasSent(id: NodeID): boolean {
    return this.indexOfSent(id) >= 0;
  }

  /** Replaces the remembered Node of a sent peer (copying the list it shares with the full map first). */
  private replaceSent(id: NodeID, node: Node): void {
    const i = this.indexOfSent(id);
    if (i < 0) return;
    const own = this.sentOwned ? (this.sent as Node[]) : [...this.sent];
    own[i] = node;
    this.sent = own;
    this.sentOwned = true;
  }

  /** Merges changed (added or resent) peers and removals into {@link sent}, keeping ID order. */
  private applySent(changed: ReadonlyMap<NodeID, Node>, removed: ReadonlySet<NodeID>): void {
    const added = [...changed.values()].filter((n) => !this.hasSent(n.ID)).sort((a, b) => a.ID - b.ID);
    const next: Node[] = [];
    let k = 0;
    for (const p of this.sent) {
      while (k < added.length && added[k].ID < p.ID) next.push(added[k++]);
      if (removed.has(p.ID)) continue;
      next.push(changed.get(p.ID) ?? p);
    }
    while (k < added.length) next.push(added[k++]);
    this.sent = next;
    this.sentOwned = true;
  }

  /** Policy changed: diff the visible peer set and per-viewer AllowedIPs. */
  private rediffPeers(state: NetmapState, pol: NodePolicyView, changed: Map<NodeID, Node>, removed: Set<NodeID>): void {
    const sent = this.sent;
    const fast = state.visiblePeersOf?.(this.nodeId);
    if (fast) {
      // Both lists are in ascending ID order: one merge, no lookups.
      const now = fast.nodes;
      let i = 0;
      let k = 0;
      while (i < sent.length || k < now.length) {
        if (k >= now.length || (i < sent.length && sent[i].ID < now[k].ID)) {
          removed.add(sent[i++].ID);
        } else if (i >= sent.length || now[k].ID < sent[i].ID) {
          changed.set(now[k].ID, now[k]);
          k++;
        } else {
          const prev = sent[i++];
          const view = now[k++];
          if (prev !== view && !sameAllowed(prev, view)) changed.set(view.ID, view);
        }
      }
      return;
    }
    const kept = new Uint8Array(sent.length);
    for (const [id, allowed] of pol.peers) {
      if (id === this.nodeId) continue;
      const peer = state.nodes.get(id);
      if (!isVisiblePeer(peer)) continue;
      const view = peerFor(peer, allowed);
      const i = this.indexOfSent(id);
      if (i >= 0) kept[i] = 1;
      const prev = i >= 0 ? sent[i] : undefined;
      if (prev === undefined || (prev !== view && !sameAllowed(prev, view))) changed.set(id, view);
    }
    for (let i = 0; i < sent.length; i++) if (!kept[i]) removed.add(sent[i].ID);
  }

  /** A node joined or changed: add/resend it if visible, remove it if it no longer is. */
  private considerPeer(state: NetmapState, pol: NodePolicyView, id: NodeID, changed: Map<NodeID, Node>, removed: Set<NodeID>, resend: boolean): void {
    if (id === this.nodeId) return;
    const allowed = pol.peers.get(id);
    const peer = state.nodes.get(id);
    if (allowed === undefined || !isVisiblePeer(peer)) {
      if (this.hasSent(id)) removed.add(id);
      return;
    }
    if (resend || !this.hasSent(id)) changed.set(id, peerFor(peer, allowed));
  }

}

function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Equal filters: identical objects, or (unless the snapshot interns them) equal JSON. */
function sameValue(a: unknown, b: unknown, interned: boolean): boolean {
  if (a === b) return true;
  if (interned && (!Array.isArray(a) || !Array.isArray(b) || a.length > 0 || b.length > 0)) return false;
  return sameJson(a, b);
}

function sameSsh(a: NodePolicyView["sshPolicy"], b: NodePolicyView["sshPolicy"], interned: boolean): boolean {
  if (a === b) return true;
  if (a !== null && b !== null && a.rules === b.rules) return true;
  if (interned && (a?.rules.length ?? 0) + (b?.rules.length ?? 0) > 0) return false;
  return sameJson(a, b);
}

function sameAllowed(a: Node, b: Node): boolean {
  if (a.AllowedIPs.length !== b.AllowedIPs.length) return false;
  if (a.Key !== b.Key) return false;
  for (let i = 0; i < a.AllowedIPs.length; i++) if (a.AllowedIPs[i] !== b.AllowedIPs[i]) return false;
  return true;
}
