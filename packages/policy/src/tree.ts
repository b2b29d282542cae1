/** Typed readers over a jsonc-parser tree that raise positioned PolicyErrors. */
import type { Node } from "jsonc-parser";
import { PolicyError, type Pos } from "./errors.js";
import type { LineIndex } from "./hujson.js";

/** Reads typed values from a parsed huJSON tree, naming field and position on error. */
export class TreeReader {
  /** Creates a reader resolving offsets through `lines`. */
  constructor(private readonly lines: LineIndex) {}

  /** The position of a node. */
  pos(n: Node): Pos {
    return this.lines.pos(n.offset);
  }

  /** Whether the node is JSON null. */
  isNull(n: Node | undefined): boolean {
    return !n || n.type === "null";
  }

  /** Reads an object, rejecting keys outside `allowed`; returns key → value node. */
  object(n: Node, field: string, allowed: readonly string[] | null): Map<string, Node> {
    if (n.type !== "object") throw new PolicyError("type", `${field}: expected an object`, this.pos(n));
    const out = new Map<string, Node>();
    for (const prop of n.children ?? []) {
      const [k, v] = prop.children ?? [];
      const key = String(k.value);
      if (allowed && !allowed.includes(key)) {
        throw new PolicyError("unknown-field", `${field}: unknown field ${JSON.stringify(key)}`, this.pos(k));
      }
      if (out.has(key)) throw new PolicyError("invalid-value", `${field}: duplicate field ${JSON.stringify(key)}`, this.pos(k));
      out.set(key, v);
    }
    return out;
  }

  /** Position of the key node of an object entry (falls back to the value). */
  keyPos(v: Node): Pos {
    const prop = v.parent;
    const k = prop?.children?.[0];
    return this.pos(k ?? v);
  }

  /** Reads a string. */
  string(n: Node, field: string): string {
    if (n.type !== "string") throw new PolicyError("type", `${field}: expected a string`, this.pos(n));
    return n.value as string;
  }

  /** Reads a boolean. */
  bool(n: Node, field: string): boolean {
    if (n.type !== "boolean") throw new PolicyError("type", `${field}: expected true or false`, this.pos(n));
    return n.value as boolean;
  }

  /** Reads an array of nodes; null reads as empty. */
  array(n: Node, field: string): Node[] {
    if (n.type === "null") return [];
    if (n.type !== "array") throw new PolicyError("type", `${field}: expected an array`, this.pos(n));
    return n.children ?? [];
  }

  /** Reads an array of strings with their positions and field paths (`field[i]`). */
  strings(n: Node, field: string): { value: string; pos: Pos; field: string }[] {
    return this.array(n, field).map((c, i) => ({ value: this.string(c, `${field}[${i}]`), pos: this.pos(c), field: `${field}[${i}]` }));
  }

  /** Converts a node to a plain JS value. */
  plain(n: Node): unknown {
    switch (n.type) {
      case "object": {
        const o: Record<string, unknown> = {};
        for (const p of n.children ?? []) o[String(p.children![0].value)] = this.plain(p.children![1]);
        return o;
      }
      case "array":
        return (n.children ?? []).map((c) => this.plain(c));
      default:
        return n.value;
    }
  }
}
