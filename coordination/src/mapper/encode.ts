/**
 * JSON encoding of MapResponses with a per-node cache: a peer's Node object is
 * serialized once per version (snapshots share unchanged Node objects), however many
 * netmaps it appears in. Output is the same JSON as `JSON.stringify` (key order aside).
 */
import type { FilterRule, MapResponse, Node, SSHPolicy } from "@lattice/types";

/** Caches the JSON text of Node objects and packet filter SrcIPs lists (weakly: dropped with the object). */
export class NodeJsonCache {
  private readonly cache = new WeakMap<Node, string>();
  private readonly lists = new WeakMap<readonly unknown[], string>();

  /**
   * The JSON text of a list shared between nodes' policies (a filter rule's SrcIPs, an SSH
   * rule's principals: the same array for every node the rule lands on). Lists must not
   * be mutated after first use.
   */
  list(list: readonly unknown[]): string {
    let s = this.lists.get(list);
    if (s === undefined) {
      s = JSON.stringify(list);
      this.lists.set(list, s);
    }
    return s;
  }

  /** A packet filter's JSON: like JSON.stringify, with SrcIPs lists taken from the cache. */
  filter(rules: readonly FilterRule[]): string {
    return this.rules(rules, "SrcIPs");
  }

  /** An SSH policy's JSON: like JSON.stringify, with rules' principals lists taken from the cache. */
  ssh(policy: SSHPolicy): string {
    return this.object(policy as unknown as Record<string, unknown>, "rules", (v) => (Array.isArray(v) ? this.rules(v, "principals") : undefined));
  }

  /** JSON of a list of rule objects whose `shared` field is a cached list. */
  private rules(rules: readonly object[], shared: string): string {
    let out = "[";
    for (let i = 0; i < rules.length; i++) {
      if (i > 0) out += ",";
      out += this.object(rules[i] as Record<string, unknown>, shared, (v) => (Array.isArray(v) ? this.list(v) : undefined));
    }
    return out + "]";
  }

  /** JSON of an object (JSON.stringify semantics), field `special` encoded by `enc` when it gives text. */
  private object(o: Record<string, unknown>, special: string, enc: (v: unknown) => string | undefined): string {
    if (o === null || typeof o !== "object" || typeof (o as { toJSON?: unknown }).toJSON === "function") return JSON.stringify(o);
    let out = "{";
    let first = true;
    for (const k in o) {
      if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
      const v = o[k];
      const text = (k === special ? enc(v) : undefined) ?? JSON.stringify(v);
      if (text === undefined) continue;
      if (!first) out += ",";
      first = false;
      out += `${JSON.stringify(k)}:${text}`;
    }
    return out + "}";
  }

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

/** Serializes `resp`, taking Peers and PeersChanged entries and filter/SSH shared lists from `cache`. */
export function encodeMapResponse(resp: MapResponse, cache: NodeJsonCache): string {
  const { Peers, PeersChanged, PacketFilter, SSHPolicy, ...rest } = resp;
  let json = JSON.stringify(rest);
  if (Peers === undefined && PeersChanged === undefined && PacketFilter === undefined && SSHPolicy === undefined) return json;
  let extra = "";
  if (PacketFilter !== undefined) extra += `"PacketFilter":${PacketFilter === null ? "null" : cache.filter(PacketFilter)}`;
  if (SSHPolicy !== undefined) extra += `${extra ? "," : ""}"SSHPolicy":${SSHPolicy === null ? "null" : cache.ssh(SSHPolicy)}`;
  if (Peers !== undefined) extra += `${extra ? "," : ""}"Peers":${cache.array(Peers)}`;
  if (PeersChanged !== undefined) extra += `${extra ? "," : ""}"PeersChanged":${cache.array(PeersChanged)}`;
  json = json.length === 2 ? `{${extra}}` : `${json.slice(0, -1)},${extra}}`;
  return json;
}
