/**
 * JSON encoding of MapResponses with a per-node cache: a peer's Node object is
 * serialized once per version (snapshots share unchanged Node objects), however many
 * netmaps it appears in. Output is the same JSON as `JSON.stringify` (key order aside).
 */
import type { MapResponse, Node } from "@lattice/types";

/** Caches the JSON text of Node objects (weakly: dropped with the object). */
export class NodeJsonCache {
  private readonly cache = new WeakMap<Node, string>();

  /** The JSON text of `node`. Nodes must not be mutated after first use (snapshots are immutable). */
  json(node: Node): string {
    let s = this.cache.get(node);
    if (s === undefined) {
      s = JSON.stringify(node);
      this.cache.set(node, s);
    }
    return s;
  }

  /** A JSON array of nodes. */
  array(nodes: readonly Node[]): string {
    if (nodes.length === 0) return "[]";
    let out = "[";
    for (let i = 0; i < nodes.length; i++) {
      if (i > 0) out += ",";
      out += this.json(nodes[i]);
    }
    return out + "]";
  }
}

/** Serializes `resp`, taking Peers and PeersChanged entries from `cache`. */
export function encodeMapResponse(resp: MapResponse, cache: NodeJsonCache): string {
  const { Peers, PeersChanged, ...rest } = resp;
  let json = JSON.stringify(rest);
  if (Peers === undefined && PeersChanged === undefined) return json;
  let extra = "";
  if (Peers !== undefined) extra += `"Peers":${cache.array(Peers)}`;
  if (PeersChanged !== undefined) extra += `${extra ? "," : ""}"PeersChanged":${cache.array(PeersChanged)}`;
  json = json.length === 2 ? `{${extra}}` : `${json.slice(0, -1)},${extra}}`;
  return json;
}
