/**
 * Which nodes a recompilation changed: compares two compact compilations node by node
 * (peers with their AllowedIPs, packet filter, SSH rules, primary routes, capabilities),
 * so a node join re-diffs only the sessions whose policy view changed. Equality of large
 * shared arrays (SrcIPs, SSH principals, peer lists) is decided once per pair of arrays.
 * Unchanged packet filters and SSH rule lists of the new compilation are replaced by the
 * previous objects, so sessions see them as identical without serializing them.
 */
import type { CompiledPolicy } from "@lattice/policy";
import type { FilterRule, NodeID, SSHRule } from "@lattice/types";

/** A compilation with the NodeID of each topology index (-1 when the name had no row). */
export interface IdentifiedCompilation {
  compiled: CompiledPolicy;
  idOf: Int32Array;
}

/**
 * NodeIDs of a compilation's topology indexes: the topology's node ids (the server builds
 * it with each row's id, see topology.ts), -1 where a node has none. Compiled output is
 * matched to nodes by id only, never by name: a name can pass to another machine.
 */
export function idsOf(compiled: CompiledPolicy): Int32Array {
  const out = new Int32Array(compiled.ids.length);
  compiled.ids.forEach((id, j) => (out[j] = id ?? -1));
  return out;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Structural equality of JSON-like values (keys in any order). Stricter than comparing
 * JSON text where it matters only for speed: an undefined-valued key counts as a key.
 */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra);
  if (ka.length !== Object.keys(rb).length) return false;
  for (const k of ka) if (!Object.prototype.hasOwnProperty.call(rb, k) || !deepEqual(ra[k], rb[k])) return false;
  return true;
}

/** Memoized equality of pairs of (large, shared) objects. */
class PairMemo<T extends object> {
  private readonly memo = new Map<T, Map<T, boolean>>();
  constructor(private readonly eq: (a: T, b: T) => boolean) {}
  same(a: T, b: T): boolean {
    if (a === b) return true;
    let m = this.memo.get(a);
    if (!m) {
      m = new Map();
      this.memo.set(a, m);
    }
    let r = m.get(b);
    if (r === undefined) {
      r = this.eq(a, b);
      m.set(b, r);
    }
    return r;
  }
}

/** Same keys, `big` compared with `memo`, every other field structurally. */
function sameFields<T extends object>(a: T, b: T, big: keyof T, memo: PairMemo<readonly object[]> | PairMemo<readonly string[]>): boolean {
  const ka = Object.keys(a) as (keyof T)[];
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!(k in b)) return false;
    if (k === big) {
      if (!(memo as PairMemo<readonly unknown[] & object>).same(a[k] as readonly unknown[] & object, b[k] as readonly unknown[] & object)) return false;
    } else if (!deepEqual(a[k], b[k])) return false;
  }
  return true;
}

/**
 * NodeIDs whose compiled view differs between `prev` and `next` (present in `next` and
 * new or changed, or present in `prev` only), conservative: a reported node may be
 * unchanged, an unreported one never is. Mutates `next`: unchanged packet filters and
 * SSH rule lists become `prev`'s objects.
 *
 * `touched` (optional): the only topology indexes of `next` that may differ from `prev`
 * (an incremental compile's report, `IncrementalResult.touched`); every other node is
 * taken as unchanged without comparing it, so the diff costs what the change touched.
 */
export function changedNodes(prev: IdentifiedCompilation, next: IdentifiedCompilation, touched?: readonly number[]): NodeID[] {
  const p = prev.compiled;
  const n = next.compiled;
  const prevIdx = new Map<NodeID, number>();
  prev.idOf.forEach((id, j) => id >= 0 && prevIdx.set(id, j));
  const baseSame = new Uint8Array(n.names.length);
  for (let j = 0; j < n.names.length; j++) {
    const pj = next.idOf[j] >= 0 ? prevIdx.get(next.idOf[j]) : undefined;
    baseSame[j] = pj !== undefined && sameStrings(p.baseAllowed[pj], n.baseAllowed[j]) ? 1 : 0;
  }
  const lists = new PairMemo<readonly number[]>((a, b) => {
    if (a.length !== b.length) return false;
    for (let k = 0; k < a.length; k++) {
      const id = next.idOf[b[k]];
      if (id < 0 || prev.idOf[a[k]] !== id || !baseSame[b[k]]) return false;
    }
    return true;
  });
  const srcs = new PairMemo<readonly string[]>(sameStrings);
  const principals = new PairMemo<readonly object[]>(deepEqual);
  const sameRule = (a: FilterRule, b: FilterRule): boolean => sameFields(a, b, "SrcIPs", srcs);
  const sameFilter = (a: readonly FilterRule[], b: readonly FilterRule[]): boolean => a === b || (a.length === b.length && a.every((r, i) => sameRule(r, b[i])));
  const sameSshRule = (a: SSHRule, b: SSHRule): boolean => sameFields(a, b, "principals", principals);
  const sameSsh = (a: readonly SSHRule[] | undefined, b: readonly SSHRule[] | undefined): boolean =>
    a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((r, i) => sameSshRule(r, b[i])));

  const out: NodeID[] = [];
  const present = new Set<NodeID>();
  for (let j = 0; j < n.nodes.length; j++) {
    const id = next.idOf[j];
    if (id >= 0) present.add(id);
  }
  for (const j of touched ?? n.nodes.keys()) {
    const id = next.idOf[j];
    if (id < 0) continue;
    const pj = prevIdx.get(id);
    const nc = n.nodes[j];
    if (pj === undefined) {
      out.push(id);
      continue;
    }
    const pc = p.nodes[pj];
    let same = true;
    if (sameFilter(pc.packetFilter, nc.packetFilter)) nc.packetFilter = pc.packetFilter;
    else same = false;
    if (sameSsh(pc.ssh, nc.ssh)) {
      if (pc.ssh) nc.ssh = pc.ssh;
    } else same = false;
    if (same) same = lists.same(pc.peers.list, nc.peers.list) && sameOverrides(prev, pc.peers.overrides, next, nc.peers.overrides, prevIdx);
    if (same) same = deepEqual(pc.primaryRoutes, nc.primaryRoutes) && deepEqual(pc.capMap, nc.capMap);
    if (!same) out.push(id);
  }
  for (const id of prevIdx.keys()) if (!present.has(id)) out.push(id);
  return out;
}

function sameOverrides(
  prev: IdentifiedCompilation,
  a: ReadonlyMap<number, readonly string[]> | null,
  next: IdentifiedCompilation,
  b: ReadonlyMap<number, readonly string[]> | null,
  prevIdx: ReadonlyMap<NodeID, number>,
): boolean {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  if (!a || !b) return true;
  for (const [k, v] of b) {
    const pk = prevIdx.get(next.idOf[k]);
    const pv = pk === undefined ? undefined : a.get(pk);
    if (pv === undefined || prev.idOf[pk!] !== next.idOf[k] || !sameStrings(pv, v)) return false;
  }
  return true;
}
