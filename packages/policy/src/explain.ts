/**
 * "Who can reach what": whether a source (user, group, tag, node or address) may open a TCP
 * connection to a destination `alias:port`, and the first rule that allows it — the
 * preview of the admin console's Access controls page (issue 11).
 *
 * A rule's alias covers the source when it names it (the same user by the one identity
 * rule, a group holding that user, the same tag, `*`, the autogroup it belongs to), or when
 * it resolves to addresses of the source's devices (IP prefixes, hosts, IP sets). So a user
 * without devices still gets an answer from the policy's words, as Tailscale's preview does.
 * Rules are numbered as written: `acls` entries "rule N", `grants` entries "grant N".
 */
import { parseTree, type Node } from "jsonc-parser";
import { parseAlias } from "./alias.js";
import { LineIndex } from "./hujson.js";
import { userMatchesToken } from "./identity.js";
import type { IPRange } from "./ip.js";
import type { Alias, Grant, Policy } from "./model.js";
import { Resolver } from "./resolve.js";
import { indexTopology, isTailnetAdmin, tailnetOwner, type Topology, type TopologyIndex, type TopologyUser } from "./topology.js";

/** The preview's answer. */
export interface AccessVerdict {
  allowed: boolean;
  /** The deciding rule, null when none allows it (or the policy allows everything). */
  rule: { list: "acls" | "grants"; number: number; line: number } | null;
  /** One line, e.g. `alice@ → tag:server:22 allowed by rule 2 (line 9)`. */
  summary: string;
}

/** What a source or destination stands for. */
interface Subject {
  users: TopologyUser[];
  tags: string[];
  ranges: IPRange[];
}

const NO_POS = { line: 0, column: 0 };

function subjectOf(text: string, policy: Policy, topo: TopologyIndex, resolver: Resolver, role: "source" | "destination"): Subject {
  const node = topo.nodes.find((n) => n.name.toLowerCase() === text.toLowerCase());
  if (node) {
    return {
      users: !node.tagged && node.user ? [node.user] : [],
      tags: node.tags,
      ranges: [
        { v6: false, lo: node.v4, hi: node.v4 },
        { v6: true, lo: node.v6, hi: node.v6 },
      ],
    };
  }
  let a: Alias;
  try {
    a = parseAlias(text, NO_POS);
  } catch (e) {
    throw new Error(`${role}: ${(e as Error).message}`);
  }
  const ranges = resolver.resolve(a).ranges;
  switch (a.kind) {
    case "user": {
      const u = resolver.findUser(a.name);
      if (!u) throw new Error(`${role}: no user has the login ${JSON.stringify(text)}`);
      return { users: [u], tags: [], ranges };
    }
    case "group": {
      if (!policy.groups.has(a.name)) throw new Error(`${role}: ${JSON.stringify(text)} is not a group of the policy`);
      const users = (policy.groups.get(a.name) ?? []).map((m) => resolver.findUser(m)).filter((u): u is TopologyUser => !!u);
      return { users, tags: [], ranges };
    }
    case "tag":
      return { users: [], tags: [a.name], ranges };
    case "host":
      if (!policy.hosts.has(a.name)) throw new Error(`${role}: ${JSON.stringify(text)} is neither a node nor a host of the policy`);
      return { users: [], tags: [], ranges };
    default:
      return { users: [], tags: [], ranges };
  }
}

function overlaps(a: readonly IPRange[], b: readonly IPRange[]): boolean {
  for (const x of a) for (const y of b) if (x.v6 === y.v6 && x.lo <= y.hi && y.lo <= x.hi) return true;
  return false;
}

function covers(list: readonly Alias[], s: Subject, policy: Policy, topo: TopologyIndex, resolver: Resolver): boolean {
  for (const a of list) {
    switch (a.kind) {
      case "wildcard":
        return true;
      case "user":
        if (s.users.some((u) => userMatchesToken(a.name, u))) return true;
        break;
      case "group":
        if (s.users.some((u) => (policy.groups.get(a.name) ?? []).some((m) => userMatchesToken(m, u)))) return true;
        break;
      case "tag":
        if (s.tags.includes(a.name)) return true;
        break;
      case "userDomain":
        if (s.users.some((u) => u.email.toLowerCase().endsWith(`@${a.domain.toLowerCase()}`))) return true;
        break;
      case "autogroup":
        if (a.name === "member" && s.users.length > 0 && s.tags.length === 0) return true;
        if (a.name === "tagged" && s.tags.length > 0) return true;
        if (a.name === "admin" && s.tags.length === 0 && s.users.some((u) => isTailnetAdmin(topo, u))) return true;
        if (a.name === "owner" && s.tags.length === 0 && s.users.some((u) => u.id === tailnetOwner(topo)?.id)) return true;
        break;
      default:
        break;
    }
    if (overlaps(resolver.resolve(a).ranges, s.ranges)) return true;
  }
  return false;
}

function allowsPort(g: Grant, port: number): boolean {
  return g.ip.some((pp) => (pp.proto === null || pp.proto.includes(6)) && pp.ports.some((r) => r.First <= port && port <= r.Last));
}

/** Rule numbers by the position of each `acls` / `grants` entry in the text. */
function ruleNumbers(text: string): Map<string, { list: "acls" | "grants"; number: number; line: number }> {
  const out = new Map<string, { list: "acls" | "grants"; number: number; line: number }>();
  const lines = new LineIndex(text);
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  for (const prop of root?.children ?? []) {
    const [k, v] = prop.children ?? [];
    const list = k?.value;
    if ((list !== "acls" && list !== "grants") || v?.type !== "array") continue;
    (v.children ?? []).forEach((el: Node, i: number) => {
      const p = lines.pos(el.offset);
      out.set(`${p.line}:${p.column}`, { list, number: i + 1, line: p.line });
    });
  }
  return out;
}

/**
 * Explains whether `src` may reach `dst` (`alias:port`, TCP) under `policy` (parsed from
 * `text`) on `topology`.
 * @throws {Error} naming `source`/`destination` when one names nothing the policy or the
 * tailnet knows, or the port is not a number 1–65535.
 */
export function explainAccess(text: string, policy: Policy, topology: Topology, src: string, dst: string): AccessVerdict {
  const topo = indexTopology(topology);
  const resolver = new Resolver(policy, topo);
  const colon = dst.lastIndexOf(":");
  const portText = colon > 0 ? dst.slice(colon + 1) : "";
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw new Error(`destination: ${JSON.stringify(dst)} must be alias:port, e.g. tag:server:22`);
  const s = subjectOf(src.trim(), policy, topo, resolver, "source");
  const d = subjectOf(dst.slice(0, colon).trim(), policy, topo, resolver, "destination");
  const head = `${src.trim()} → ${dst.trim()}`;
  if (policy.allowAll) return { allowed: true, rule: null, summary: `${head} allowed: the policy has no acls or grants (everything is allowed)` };
  const numbers = ruleNumbers(text);
  for (const g of policy.grants) {
    if (!allowsPort(g, port)) continue;
    if (!covers(g.src, s, policy, topo, resolver) || !covers(g.dst, d, policy, topo, resolver)) continue;
    const rule = numbers.get(`${g.pos.line}:${g.pos.column}`) ?? null;
    const name = rule ? `${rule.list === "acls" ? "rule" : "grant"} ${rule.number}` : `the rule at line ${g.pos.line}`;
    return { allowed: true, rule, summary: `${head} allowed by ${name}${rule ? ` (line ${rule.line})` : ""}` };
  }
  return { allowed: false, rule: null, summary: `${head} denied: no rule allows it` };
}
