/**
 * Policy views over the compiler's compact output: a node's visible peers as a
 * `ReadonlyMap<NodeID, AllowedIPs>` backed by the peer list it shares with every node
 * that has the same peer set, so building a view is O(1) and a snapshot does not copy
 * 11 M (viewer, peer) pairs into Maps. Compiled nodes are matched to snapshot nodes by
 * id (the topology's `id`), never by name. The per-list ID ordering and the views
 * themselves are cached across snapshots while the compilation and the set of its ids
 * present in the snapshot stay the same.
 */
import type { CompactNode, CompiledPolicy } from "@lattice/policy";
import { sortedHas } from "@lattice/policy";
import type { Node, NodeID, SSHRule, UserID } from "@lattice/types";
import type { NodePolicyView, VisiblePeers } from "../mapper/types.js";
import { isVisiblePeer, peerFor } from "../mapper/full.js";

/** A shared peer list ordered by NodeID (nodes missing from the snapshot left out). */
interface SortedPeers {
  /** Node ids, ascending. */
  ids: Int32Array;
  /** The topology index of each id. */
  idxs: Int32Array;
}

/** What every view of one (compilation, ids present in the snapshot) shares. */
interface Shared {
  compiled: CompiledPolicy;
  /** Topology index → NodeID (-1 when the node is not in the snapshot). */
  idOf: Int32Array;
  /** NodeID → topology index. */
  idxOfId: Map<NodeID, number>;
  /** Topology index → the AllowedIPs array viewers without overrides get (the peer's own array when equal). */
  allowed: (readonly string[])[];
  sorted: WeakMap<readonly number[], SortedPeers>;
  views: Map<number, NodePolicyView>;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One node's peers: a read-only map view over a shared compact peer list. */
export class PeerMap implements ReadonlyMap<NodeID, readonly string[]> {
  #size = -1;

  /** Wraps `node`'s peers (`self` = its topology index). */
  constructor(
    private readonly shared: Shared,
    private readonly self: number,
    private readonly node: CompactNode,
  ) {}

  /** The shared compact peer list. */
  get list(): readonly number[] {
    return this.node.peers.list;
  }

  /** This node's AllowedIPs overrides (compact indexes). */
  get overrides(): ReadonlyMap<number, readonly string[]> | null {
    return this.node.peers.overrides;
  }

  /** The shared ID ordering of the list. */
  get sorted(): SortedPeers {
    const list = this.node.peers.list;
    let s = this.shared.sorted.get(list);
    if (!s) {
      const idOf = this.shared.idOf;
      const pairs: number[] = [];
      for (const j of list) if (idOf[j] >= 0) pairs.push(j);
      pairs.sort((a, b) => idOf[a] - idOf[b]);
      s = { ids: Int32Array.from(pairs, (j) => idOf[j]), idxs: Int32Array.from(pairs) };
      this.shared.sorted.set(list, s);
    }
    return s;
  }

  private indexOf(id: NodeID): number {
    const j = this.shared.idxOfId.get(id);
    if (j === undefined || j === this.self || !sortedHas(this.node.peers.list, j)) return -1;
    return j;
  }

  private value(j: number): readonly string[] {
    return this.node.peers.overrides?.get(j) ?? this.shared.allowed[j];
  }

  /** {@inheritDoc ReadonlyMap.get} */
  get(id: NodeID): readonly string[] | undefined {
    const j = this.indexOf(id);
    return j < 0 ? undefined : this.value(j);
  }

  /** {@inheritDoc ReadonlyMap.has} */
  has(id: NodeID): boolean {
    return this.indexOf(id) >= 0;
  }

  /** {@inheritDoc ReadonlyMap.size} */
  get size(): number {
    if (this.#size < 0) {
      const s = this.sorted;
      const selfId = this.shared.idOf[this.self];
      this.#size = s.ids.length - (selfId >= 0 && sortedHas(this.node.peers.list, this.self) ? 1 : 0);
    }
    return this.#size;
  }

  /** Entries in ascending NodeID order. */
  *entries(): MapIterator<[NodeID, readonly string[]]> {
    const { ids, idxs } = this.sorted;
    for (let k = 0; k < ids.length; k++) {
      const j = idxs[k];
      if (j !== this.self) yield [ids[k], this.value(j)];
    }
  }

  /** Peer ids, ascending. */
  *keys(): MapIterator<NodeID> {
    const { ids, idxs } = this.sorted;
    for (let k = 0; k < ids.length; k++) if (idxs[k] !== this.self) yield ids[k];
  }

  /** AllowedIPs in ascending peer id order. */
  *values(): MapIterator<readonly string[]> {
    for (const [, v] of this.entries()) yield v;
  }

  /** {@inheritDoc ReadonlyMap.forEach} */
  forEach(cb: (value: readonly string[], key: NodeID, map: ReadonlyMap<NodeID, readonly string[]>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this);
  }

  /** Same as {@link entries}. */
  [Symbol.iterator](): MapIterator<[NodeID, readonly string[]]> {
    return this.entries();
  }
}

/** Per-backend cache of policy views, kept across snapshots (like the NodeCache). */
export interface ViewCache {
  shared?: Shared;
}

/** A snapshot's policy lookups (see NetmapState.policyFor and NetmapState.visiblePeersOf). */
export interface SnapshotViews {
  policyFor(id: NodeID): NodePolicyView | undefined;
  visiblePeersOf(id: NodeID): VisiblePeers | undefined;
}

/**
 * The policy lookups of a snapshot: views over `compiled` for the snapshot's nodes, reusing
 * the cache when the compilation and the ids present are unchanged, and each shared
 * peer list's visible Node objects built once per snapshot.
 */
export function policyViews(compiled: CompiledPolicy, nodes: ReadonlyMap<NodeID, Node>, cache: ViewCache): SnapshotViews {
  const n = compiled.ids.length;
  const idOf = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const id = compiled.ids[j];
    idOf[j] = id !== undefined && nodes.has(id) ? id : -1;
  }
  let shared = cache.shared;
  if (!shared || shared.compiled !== compiled || !sameIds(shared.idOf, idOf)) {
    const idxOfId = new Map<NodeID, number>();
    const allowed: (readonly string[])[] = [];
    for (let j = 0; j < n; j++) {
      const base = compiled.baseAllowed[j];
      const peer = idOf[j] >= 0 ? nodes.get(idOf[j]) : undefined;
      // Share the peer's own AllowedIPs array when equal, so the mapper reuses the peer object.
      allowed.push(peer && sameList(peer.AllowedIPs, base) ? peer.AllowedIPs : base);
      if (idOf[j] >= 0) idxOfId.set(idOf[j], j);
    }
    shared = { compiled, idOf, idxOfId, allowed, sorted: new WeakMap(), views: new Map() };
    cache.shared = shared;
  }
  const sh = shared;
  const policyFor = (id: NodeID): NodePolicyView | undefined => {
    const j = sh.idxOfId.get(id);
    if (j === undefined) return undefined;
    let view = sh.views.get(j);
    if (!view) {
      const c = compiled.nodes[j];
      view = {
        packetFilter: c.packetFilter,
        sshPolicy: c.ssh && c.ssh.length > 0 ? { rules: c.ssh as SSHRule[] } : null,
        peers: new PeerMap(sh, j, c),
      };
      if (c.capMap) view.capMap = Object.fromEntries(Object.entries(c.capMap).map(([k, v]) => [k, v ?? []]));
      sh.views.set(j, view);
    }
    return view;
  };
  // Per snapshot: each shared list's visible peers (Node objects of this snapshot).
  const byList = new WeakMap<readonly number[], VisiblePeers>();
  const listPeers = (pm: PeerMap): VisiblePeers => {
    let v = byList.get(pm.list);
    if (!v) {
      const { ids, idxs } = pm.sorted;
      const out: Node[] = [];
      const users = new Set<UserID>();
      for (let k = 0; k < ids.length; k++) {
        const peer = nodes.get(ids[k]);
        if (!isVisiblePeer(peer)) continue;
        const n = peerFor(peer, sh.allowed[idxs[k]]);
        out.push(n);
        users.add(n.User);
      }
      v = { nodes: out, users };
      byList.set(pm.list, v);
    }
    return v;
  };
  const visiblePeersOf = (id: NodeID): VisiblePeers | undefined => {
    const pol = policyFor(id);
    if (!pol || !(pol.peers instanceof PeerMap)) return undefined;
    const pm = pol.peers;
    const shared = listPeers(pm);
    const selfIdx = sh.idxOfId.get(id)!;
    const ov = pm.overrides;
    if (!ov && !sortedHas(pm.list, selfIdx)) return shared;
    const out = [...shared.nodes];
    const at = (nid: NodeID): number => {
      let lo = 0;
      let hi = out.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        const v = out[mid].ID;
        if (v === nid) return mid;
        if (v < nid) lo = mid + 1;
        else hi = mid - 1;
      }
      return -1;
    };
    if (ov) {
      for (const [j, allowed] of ov) {
        if (j === selfIdx) continue;
        const i = at(sh.idOf[j]);
        if (i >= 0) out[i] = peerFor(nodes.get(sh.idOf[j])!, allowed);
      }
    }
    const si = at(id);
    if (si >= 0) out.splice(si, 1);
    return { nodes: out, users: shared.users };
  };
  return { policyFor, visiblePeersOf };
}

function sameIds(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
