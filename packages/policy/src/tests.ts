/** Evaluation of the policy's `tests` and `sshTests` blocks; a failing test rejects the policy. */
import type { FilterRule } from "@lattice/types";
import { parseAlias, parsePorts, parseProto } from "./alias.js";
import { PolicyError, type Pos } from "./errors.js";
import { parseAddr, type IPRange } from "./ip.js";
import type { Alias, Policy } from "./model.js";
import type { Resolver } from "./resolve.js";
import type { SshCompiler } from "./ssh.js";
import type { NodeInfo } from "./topology.js";

const DEFAULT_PROTOS = [6, 17, 1];

function fail(detail: string, pos: Pos, field?: string, value?: string): never {
  throw new PolicyError("tests-failed", `test(s) failed: ${detail}`, pos, field, value);
}

/** Resolves a test source to addresses (possibly none); undefined when the alias names nothing known. */
function testSource(resolver: Resolver, policy: Policy, src: string, pos: Pos): IPRange[] | undefined {
  if (src === "") return undefined;
  let a: Alias;
  try {
    a = parseAlias(src, pos);
  } catch {
    return undefined;
  }
  switch (a.kind) {
    case "user":
      if (!resolver.findUser(a.name)) return undefined;
      break;
    case "group":
      if (!policy.groups.has(a.name)) return undefined;
      break;
    case "tag":
      if (!policy.tagOwners.has(a.name)) return undefined;
      break;
    case "host":
      if (!policy.hosts.has(a.name)) return undefined;
      break;
    case "prefix":
      if (a.range.lo !== a.range.hi) return undefined;
      return [a.range];
    case "autogroup":
      if (a.name !== "member" && a.name !== "tagged") return undefined;
      break;
    default:
      return undefined;
  }
  const r = resolver.resolve(a);
  // A known identity without devices has no traffic to check: its tests hold vacuously.
  return r.ranges;
}

/** Resolves a test destination "alias:port" to addresses and one port; undefined when not testable. */
function testDest(resolver: Resolver, policy: Policy, dst: string, pos: Pos): { ranges: IPRange[]; port: number } | undefined {
  const i = dst.lastIndexOf(":");
  if (i <= 0) return undefined;
  let aliasText = dst.slice(0, i);
  // "[v6]:port": the brackets only delimit the address.
  if (aliasText.startsWith("[") && aliasText.endsWith("]")) aliasText = aliasText.slice(1, -1);
  const portText = dst.slice(i + 1);
  if (!/^\d+$/.test(portText)) return undefined;
  const ports = parsePorts(portText);
  if (typeof ports === "string" || ports.length !== 1 || ports[0].First !== ports[0].Last) return undefined;
  let a: Alias;
  try {
    a = parseAlias(aliasText, pos);
  } catch {
    return undefined;
  }
  if (a.kind === "prefix") {
    if (a.range.lo !== a.range.hi || aliasText.includes("/")) return undefined;
    return { ranges: [a.range], port: ports[0].First };
  }
  if (a.kind === "wildcard" || a.kind === "autogroup" || a.kind === "userDomain") return undefined;
  if (a.kind === "group" && !policy.groups.has(a.name)) return undefined;
  if (a.kind === "tag" && !policy.tagOwners.has(a.name)) return undefined;
  if (a.kind === "host") {
    const h = policy.hosts.get(a.name);
    if (!h || h.lo !== h.hi) return undefined;
  }
  if (a.kind === "user" && !resolver.findUser(a.name)) return undefined;
  const r = resolver.resolve(a);
  return { ranges: r.ranges, port: ports[0].First };
}

function hostAddrs(ranges: IPRange[]): { v6: boolean; n: bigint }[] {
  return ranges.filter((r) => r.lo === r.hi).map((r) => ({ v6: r.v6, n: r.lo }));
}

/** Parsed address list (SrcIPs or one DstPorts IP): sorted, merged ranges per family. */
interface AddrMatcher {
  any: boolean;
  v4: { lo: bigint[]; hi: bigint[] };
  v6: { lo: bigint[]; hi: bigint[] };
}

/** One entry of a filter's address list as a range; null when it never matches; "any" for "*". */
function entryRange(s: string): { v6: boolean; lo: bigint; hi: bigint } | "any" | null {
  if (s === "*") return "any";
  const dash = s.indexOf("-");
  if (dash > 0) {
    const lo = parseAddr(s.slice(0, dash));
    const hi = parseAddr(s.slice(dash + 1));
    if (!lo || !hi || lo.v6 !== hi.v6) return null;
    return { v6: lo.v6, lo: lo.n, hi: hi.n };
  }
  const slash = s.indexOf("/");
  const base = parseAddr(slash >= 0 ? s.slice(0, slash) : s);
  if (!base) return null;
  const width = base.v6 ? 128 : 32;
  const bits = slash >= 0 ? Number(s.slice(slash + 1)) : width;
  if (!Number.isInteger(bits) || bits < 0 || bits > width) return null;
  const shift = BigInt(width - bits);
  const lo = (base.n >> shift) << shift;
  return { v6: base.v6, lo, hi: lo + (1n << shift) - 1n };
}

function matcher(list: readonly string[]): AddrMatcher {
  const m: AddrMatcher = { any: false, v4: { lo: [], hi: [] }, v6: { lo: [], hi: [] } };
  const r4: [bigint, bigint][] = [];
  const r6: [bigint, bigint][] = [];
  for (const s of list) {
    const r = entryRange(s);
    if (r === "any") m.any = true;
    else if (r) (r.v6 ? r6 : r4).push([r.lo, r.hi]);
  }
  for (const [rs, out] of [[r4, m.v4], [r6, m.v6]] as const) {
    rs.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    for (const [lo, hi] of rs) {
      const last = out.hi.length - 1;
      if (last >= 0 && lo <= out.hi[last] + 1n) {
        if (hi > out.hi[last]) out.hi[last] = hi;
      } else {
        out.lo.push(lo);
        out.hi.push(hi);
      }
    }
  }
  return m;
}

function matches(m: AddrMatcher, a: { v6: boolean; n: bigint }): boolean {
  if (m.any) return true;
  const { lo, hi } = a.v6 ? m.v6 : m.v4;
  // Last range starting at or below the address.
  let l = 0;
  let h = lo.length - 1;
  let found = -1;
  while (l <= h) {
    const mid = (l + h) >>> 1;
    if (lo[mid] <= a.n) {
      found = mid;
      l = mid + 1;
    } else h = mid - 1;
  }
  return found >= 0 && a.n <= hi[found];
}

/** A filter rule parsed once (per {@link runPolicyTests} run). */
interface ParsedRule {
  protos: readonly number[];
  src: AddrMatcher;
  dsts: { first: number; last: number; ip: AddrMatcher }[];
}

/** Parses filter rules once per rule object and SrcIPs array. */
class RuleParser {
  private readonly rules = new WeakMap<FilterRule, ParsedRule | null>();
  private readonly lists = new WeakMap<readonly string[], AddrMatcher>();

  parse(r: FilterRule): ParsedRule | null {
    let p = this.rules.get(r);
    if (p !== undefined) return p;
    if (!r.DstPorts) p = null;
    else {
      let src = this.lists.get(r.SrcIPs);
      if (!src) {
        src = matcher(r.SrcIPs);
        this.lists.set(r.SrcIPs, src);
      }
      p = { protos: r.IPProto ?? DEFAULT_PROTOS, src, dsts: r.DstPorts.map((d) => ({ first: d.Ports.First, last: d.Ports.Last, ip: matcher([d.IP]) })) };
    }
    this.rules.set(r, p);
    return p;
  }
}

function ruleAllows(parser: RuleParser, rules: readonly FilterRule[], src: { v6: boolean; n: bigint }, dst: { v6: boolean; n: bigint }, port: number, proto: number): boolean {
  for (const rule of rules) {
    const r = parser.parse(rule);
    if (!r) continue;
    if (!r.protos.includes(proto)) continue;
    if (!matches(r.src, src)) continue;
    for (const d of r.dsts) {
      if (d.first <= port && port <= d.last && matches(d.ip, dst)) return true;
    }
  }
  return false;
}

/** Runs `tests`: every accept must be allowed and every deny refused by the compiled filters. */
export function runPolicyTests(policy: Policy, resolver: Resolver, filterFor: (n: NodeInfo) => FilterRule[]): void {
  if (policy.tests.length === 0) return;
  const globalRules = resolver.topo.nodes.length > 0 ? null : [];
  const parser = new RuleParser();
  const cache = new Map<number, FilterRule[]>();
  const rulesAt = (dst: { v6: boolean; n: bigint }): FilterRule[] => {
    // A destination that is a node uses that node's filter; any other address uses every node's rules.
    const key = `${dst.v6 ? 6 : 4}:${dst.n}`;
    const idx = resolver.topo.byAddr.get(key);
    const nodes = idx !== undefined ? [resolver.topo.nodes[idx]] : resolver.topo.nodes;
    const out: FilterRule[] = globalRules ?? [];
    for (const n of nodes) {
      let f = cache.get(n.idx);
      if (!f) {
        f = filterFor(n);
        cache.set(n.idx, f);
      }
      out.push(...f);
    }
    return out;
  };
  for (const t of policy.tests) {
    const src = testSource(resolver, policy, t.src, t.pos);
    if (!src) fail(`src ${JSON.stringify(t.src)} is not a known user, group, tag, host or address`, t.pos);
    let proto = 6;
    if (t.proto !== undefined) {
      const p = parseProto(t.proto);
      if (typeof p === "string") fail(`proto ${JSON.stringify(t.proto)}: ${p}`, t.pos);
      if (p) proto = p[0];
    }
    const srcAddrs = hostAddrs(src);
    for (const [list, want, key, posList] of [
      [t.accept, true, "accept", t.acceptPos],
      [t.deny, false, "deny", t.denyPos],
    ] as const) {
      list.forEach((d, j) => {
        const field = t.field === undefined ? undefined : `${t.field}.${key}[${j}]`;
        const at = posList?.[j] ?? t.pos;
        const dst = testDest(resolver, policy, d, t.pos);
        if (!dst) fail(`dst ${JSON.stringify(d)} is not testable`, at, field, d);
        // Each destination address against the source addresses of its family (IPv4 and IPv6).
        for (const da of hostAddrs(dst.ranges)) {
          const rules = rulesAt(da);
          for (const sa of srcAddrs) {
            if (sa.v6 !== da.v6) continue;
            if (ruleAllows(parser, rules, sa, da, dst.port, proto) !== want) {
              fail(`${t.src} -> ${d}: expected ${want ? "accept" : "deny"}`, at, field, d);
            }
          }
        }
      });
    }
  }
}

/** Runs `sshTests` against the compiled SSH rules. */
export function runSshTests(policy: Policy, resolver: Resolver, ssh: SshCompiler | null): void {
  if (policy.sshTests.length === 0) return;
  const topo = resolver.topo;
  for (const t of policy.sshTests) {
    let srcAlias: Alias;
    try {
      srcAlias = parseAlias(t.src, t.pos);
    } catch {
      fail(`src ${JSON.stringify(t.src)} is invalid`, t.pos);
    }
    if (srcAlias.kind === "user" && !resolver.findUser(srcAlias.name)) fail(`unknown src ${t.src}`, t.pos);
    const srcNodes = [...resolver.resolve(srcAlias).nodes].map((i) => topo.nodes[i]);
    if (srcAlias.kind === "group" && !policy.groups.has(srcAlias.name)) fail(`unknown src ${t.src}`, t.pos);
    if (srcAlias.kind === "tag" && !policy.tagOwners.has(srcAlias.name)) fail(`unknown src ${t.src}`, t.pos);
    const dstNodes: NodeInfo[] = [];
    for (const d of t.dst) {
      let a: Alias;
      try {
        a = parseAlias(d, t.pos);
      } catch {
        fail(`dst ${JSON.stringify(d)} is invalid`, t.pos);
      }
      if (a.kind === "prefix" && (a.range.lo !== a.range.hi || a.range.v6)) fail(`dst ${JSON.stringify(d)}: addresses are not valid SSH test destinations`, t.pos);
      if (a.kind === "tag" && !policy.tagOwners.has(a.name)) fail(`unknown dst ${d}`, t.pos);
      if (a.kind === "host" && !policy.hosts.has(a.name)) fail(`unknown dst ${d}`, t.pos);
      // Destinations without devices have nothing to check.
      dstNodes.push(...[...resolver.resolve(a).nodes].map((i) => topo.nodes[i]));
    }
    const outcome = (dst: NodeInfo, src: NodeInfo, user: string): "accept" | "check" | "deny" => {
      if (!ssh || user === "") return "deny";
      for (const rule of ssh.rulesFor(dst)) {
        if (!rule.principals.some((p) => p.nodeIP === src.ipv4 || p.nodeIP === src.ipv6)) continue;
        const mapped = user in rule.sshUsers ? rule.sshUsers[user] : rule.sshUsers["*"];
        if (mapped === undefined || mapped === "") continue;
        return rule.action.holdAndDelegate ? "check" : "accept";
      }
      return "deny";
    };
    for (const dst of dstNodes) {
      for (const src of srcNodes) {
        for (const u of t.accept) if (outcome(dst, src, u) !== "accept") fail(`${t.src} -> ${dst.name} as ${JSON.stringify(u)}: expected accept`, t.pos);
        for (const u of t.check) if (outcome(dst, src, u) !== "check") fail(`${t.src} -> ${dst.name} as ${JSON.stringify(u)}: expected check`, t.pos);
        for (const u of t.deny) if (outcome(dst, src, u) !== "deny") fail(`${t.src} -> ${dst.name} as ${JSON.stringify(u)}: expected deny`, t.pos);
      }
    }
  }
}
