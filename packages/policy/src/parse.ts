/** parsePolicy: huJSON text → validated Policy, with positioned errors. */
import type { Node } from "jsonc-parser";
import { parseAlias, parsePorts, parseProto, prefixError, splitHostPort } from "./alias.js";
import { PolicyError, atField, type Pos } from "./errors.js";
import { LineIndex, parseHuJSON } from "./hujson.js";
import { INTERNET_RANGES, normalizeRanges, parsePrefix, rangesOverlap, subtractRanges, type IPRange } from "./ip.js";
import type { Alias, Grant, NodeAttr, Policy, PolicyTest, ProtoPorts, SshRule, SshTest } from "./model.js";
import { TreeReader } from "./tree.js";
import { checkSshSrcDst, checkSshUser } from "./ssh-validate.js";
import { formatGoDuration, parseGoDuration } from "./duration.js";

/**
 * Sections of Tailscale's policy file that Lattice does not implement. They are rejected
 * at their position instead of being accepted and silently ignored (issue 7 B3).
 */
const UNSUPPORTED_KEYS = ["postures", "defaultSrcPosture", "derpMap", "disableIPv4", "OneCGNATRoute"];

const TOP_KEYS = [
  "acls",
  "grants",
  "ssh",
  "groups",
  "tagOwners",
  "hosts",
  "autoApprovers",
  "nodeAttrs",
  "tests",
  "sshTests",
  "randomizeClientPort",
  "ipsets",
  ...UNSUPPORTED_KEYS,
];


/** Ranges Tailscale reserves inside 100.64.0.0/10: nodeAttrs ipPool entries must not overlap them. */
const RESERVED_POOL_RANGES = ["100.100.100.0/24", "100.115.92.0/23"];

/** What an SSH `users` entry may be (besides root, autogroup:nonroot and localpart:*@domain). */
const SSH_USER_RE = /^[^\s\p{Cc}*]+$/u;

const TS_CAP_ALLOW = new Set([
  "tailscale.com/cap/drive",
  "tailscale.com/cap/relay",
  "tailscale.com/cap/webui",
  "tailscale.com/cap/kubernetes",
  "tailscale.com/cap/tsidp",
  "tailscale.com/cap/secrets",
]);

/** Maximum SSH check period (168h) in seconds. */
const MAX_CHECK_PERIOD = 168 * 3600;

/** Parses and validates a policy file (huJSON). Throws PolicyError with code, line and column. */
export function parsePolicy(text: string): Policy {
  const lines = new LineIndex(text);
  const root = parseHuJSON(text, lines);
  return new PolicyParser(new TreeReader(lines)).parse(root);
}

class PolicyParser {
  private readonly tagOwners = new Map<string, string[]>();
  private readonly groups = new Map<string, string[]>();
  private readonly hosts = new Map<string, IPRange>();
  private readonly ipsets = new Map<string, { ranges: IPRange[]; internet: boolean }>();

  constructor(private readonly r: TreeReader) {}

  parse(root: Node): Policy {
    const r = this.r;
    const top = r.object(root, "policy", TOP_KEYS);
    for (const k of UNSUPPORTED_KEYS) {
      const n = top.get(k);
      if (n) throw new PolicyError("unknown-field", `${k}: this section is not supported by Lattice (it would be ignored)`, r.keyPos(n), k);
    }
    const get = (k: string): Node | undefined => {
      const n = top.get(k);
      return n && !r.isNull(n) ? n : undefined;
    };
    const g = get("groups");
    if (g) this.parseGroups(g);
    const t = get("tagOwners");
    if (t) this.parseTagOwners(t);
    const h = get("hosts");
    if (h) this.parseHosts(h);
    const ips = get("ipsets");
    if (ips) this.parseIpSets(ips);

    const grants: Grant[] = [];
    const grantsNode = get("grants");
    if (grantsNode) r.array(grantsNode, "grants").forEach((n, i) => grants.push(this.parseGrant(n, `grants[${i}]`)));
    const aclsNode = get("acls");
    if (aclsNode) r.array(aclsNode, "acls").forEach((n, i) => grants.push(...this.parseAcl(n, `acls[${i}]`)));

    const sshNode = get("ssh");
    const ssh = sshNode ? r.array(sshNode, "ssh").map((n, i) => this.parseSsh(n, `ssh[${i}]`)) : null;

    const policy: Policy = {
      allowAll: !top.has("acls") && !top.has("grants"),
      grants,
      ssh,
      groups: this.groups,
      tagOwners: this.tagOwners,
      hosts: this.hosts,
      ipsets: this.ipsets,
      autoApproverRoutes: new Map(),
      autoApproverExit: [],
      nodeAttrs: [],
      randomizeClientPort: false,
      tests: [],
      sshTests: [],
    };
    const aa = get("autoApprovers");
    if (aa) this.parseAutoApprovers(aa, policy);
    const na = get("nodeAttrs");
    if (na) policy.nodeAttrs = r.array(na, "nodeAttrs").map((n, i) => this.parseNodeAttr(n, `nodeAttrs[${i}]`));
    const rcp = get("randomizeClientPort");
    if (rcp) policy.randomizeClientPort = r.bool(rcp, "randomizeClientPort");
    const tests = get("tests");
    if (tests) policy.tests = r.array(tests, "tests").map((n, i) => this.parseTest(n, `tests[${i}]`));
    const sshTests = get("sshTests");
    if (sshTests) policy.sshTests = r.array(sshTests, "sshTests").map((n, i) => this.parseSshTest(n, `sshTests[${i}]`));
    return policy;
  }

  private parseGroups(n: Node): void {
    const r = this.r;
    const entries = r.object(n, "groups", null);
    for (const [name, v] of entries) {
      const pos = r.keyPos(v);
      if (!name.startsWith("group:")) {
        throw new PolicyError("invalid-value", `groups: ${JSON.stringify(name)} must start with "group:"`, pos);
      }
      const members: string[] = [];
      for (const m of r.strings(v, `groups[${JSON.stringify(name)}]`)) {
        if (m.value.startsWith("group:")) {
          throw new PolicyError(
            "invalid-value",
            `groups[${JSON.stringify(name)}]: ${JSON.stringify(m.value)}: group members cannot be recursive`,
            m.pos,
          );
        }
        members.push(m.value);
      }
      this.groups.set(name, members);
    }
  }

  private validateTagName(tag: string, field: string, pos: Pos): void {
    if (!/^tag:[A-Za-z]/.test(tag)) {
      throw new PolicyError("invalid-value", `${field}: tag names must start with a letter, after 'tag:'`, pos);
    }
  }

  private parseTagOwners(n: Node): void {
    const r = this.r;
    for (const [tag, v] of r.object(n, "tagOwners", null)) {
      const field = `tagOwners[${JSON.stringify(tag)}]`;
      this.validateTagName(tag, field, r.keyPos(v));
      const owners = r.strings(v, field).map((o) => o.value);
      this.tagOwners.set(tag, owners);
    }
  }

  private parseHosts(n: Node): void {
    const r = this.r;
    for (const [name, v] of r.object(n, "hosts", null)) {
      const field = `hosts[${JSON.stringify(name)}]`;
      const val = r.string(v, field);
      const p = parsePrefix(val);
      if (!p) throw new PolicyError("invalid-value", prefixError(val) ?? "invalid IP address or CIDR", r.pos(v), field, val);
      this.hosts.set(name, { v6: p.v6, lo: p.lo, hi: p.hi });
    }
  }

  /**
   * Parses the alias written at `s` (value, position, field path) and checks references
   * against groups, tags, hosts and IP sets; errors name the field, value and position.
   */
  private alias(s: { value: string; pos: Pos; field: string }, side: string, text: string = s.value): Alias {
    return atField(s.field, s.value, s.pos, () => {
      const a = parseAlias(text, s.pos);
      a.field = s.field;
      this.checkRef(a, side);
      return a;
    });
  }

  private checkRef(a: Alias, side: string): void {
    const pre = side ? `${side}=` : "";
    if (a.kind === "tag" && !this.tagOwners.has(a.name) && a.name.trim() === a.name) {
      throw new PolicyError("unknown-reference", `${pre}tag not found: ${JSON.stringify(a.name)} (not in tagOwners)`, a.pos);
    }
    if (a.kind === "group" && !this.groups.has(a.name)) {
      throw new PolicyError("unknown-reference", `${pre}group not found: ${JSON.stringify(a.name)} (not in groups)`, a.pos);
    }
    if (a.kind === "host" && !this.hosts.has(a.name)) {
      throw new PolicyError("unknown-reference", `${pre}${JSON.stringify(a.name)}: invalid address (not an IP, CIDR or name in hosts)`, a.pos);
    }
    if (a.kind === "ipset" && !this.ipsets.has(a.name)) {
      throw new PolicyError("unknown-reference", `${pre}IP set not found: ${JSON.stringify(a.name)} (not in ipsets)`, a.pos);
    }
  }

  private srcAliases(n: Node, field: string, trim = false): Alias[] {
    return this.r.strings(n, field).map((s) => {
      const a = this.alias(s, "src", trim ? s.value.trim() : s.value);
      if (a.kind === "autogroup") {
        const why =
          a.name === "self"
            ? `"autogroup:self" not valid on the src side of a rule`
            : a.name === "internet"
              ? `"autogroup:internet" not valid on the src side of a rule`
              : a.name === "nonroot"
                ? `"autogroup:nonroot" not valid as a src`
                : "";
        if (why) throw new PolicyError("invalid-value", why, a.pos, s.field, s.value);
      }
      return a;
    });
  }

  private checkSelfSources(src: Alias[], dst: Alias[], allowWildcard: boolean, pos: Pos): void {
    if (!dst.some((d) => d.kind === "autogroup" && d.name === "self")) return;
    for (const s of src) {
      const ok =
        s.kind === "user" ||
        s.kind === "userDomain" ||
        s.kind === "group" ||
        (s.kind === "autogroup" && s.name === "member") ||
        (allowWildcard && s.kind === "wildcard");
      if (!ok) {
        throw new PolicyError("invalid-value", "autogroup:self can only be used with users, groups, or supported autogroups", s.pos ?? pos, s.field, s.text);
      }
    }
  }

  private checkDst(a: Alias, field: string, value: string): void {
    if (a.kind === "autogroup" && a.name === "danger-all") {
      throw new PolicyError("invalid-value", "cannot use autogroup:danger-all as a dst", a.pos, field, value);
    }
    if (a.kind === "autogroup" && a.name === "nonroot") {
      throw new PolicyError("invalid-value", `"autogroup:nonroot" not valid as a dst`, a.pos, field, value);
    }
    if (a.kind === "prefix" && a.range.lo === 0n && (a.range.v6 ? a.range.hi === (1n << 128n) - 1n : a.range.hi === (1n << 32n) - 1n)) {
      throw new PolicyError("invalid-value", `dst ${JSON.stringify(a.text)}: to allow all IP addresses, use "*" or "autogroup:internet"`, a.pos, field, value);
    }
  }

  private parseAcl(n: Node, field: string): Grant[] {
    const r = this.r;
    const o = r.object(n, field, ["action", "src", "dst", "proto", "srcPosture", "users", "ports"]);
    this.rejectPosture(o, field);
    const pos = r.pos(n);
    const actionNode = o.get("action");
    const action = actionNode ? r.string(actionNode, `${field}.action`) : "";
    if (action !== "accept") {
      throw new PolicyError("invalid-value", `action=${JSON.stringify(action)} is not supported (only "accept")`, actionNode ? r.pos(actionNode) : pos, `${field}.action`, action);
    }
    let proto: number[] | null = null;
    const protoNode = o.get("proto");
    if (protoNode && !r.isNull(protoNode)) {
      const p = parseProto(r.string(protoNode, `${field}.proto`));
      if (typeof p === "string") throw new PolicyError("invalid-value", p, r.pos(protoNode), `${field}.proto`, r.string(protoNode, `${field}.proto`));
      proto = p;
    }
    const srcNode = o.get("src") ?? o.get("users");
    const dstNode = o.get("dst") ?? o.get("ports");
    const src = srcNode ? this.srcAliases(srcNode, `${field}.src`) : [];
    const dsts: { alias: Alias; ports: ProtoPorts }[] = [];
    for (const d of dstNode ? r.strings(dstNode, `${field}.dst`) : []) {
      atField(d.field, d.value, d.pos, () => {
        const hp = splitHostPort(d.value, d.pos);
        const ports = parsePorts(hp.ports);
        if (typeof ports === "string") {
          throw new PolicyError("invalid-value", `dst=${JSON.stringify(d.value)}: port range ${JSON.stringify(hp.ports)}: ${ports}`, d.pos);
        }
        const a = parseAlias(hp.alias, d.pos);
        a.field = d.field;
        if (a.kind === "tag" && !this.tagOwners.has(a.name)) {
          throw new PolicyError("unknown-reference", `dst=${JSON.stringify(hp.alias)}: tag not found: ${JSON.stringify(a.name)} (not in tagOwners)`, d.pos);
        }
        this.checkRef(a, "dst");
        this.checkDst(a, d.field, d.value);
        dsts.push({ alias: a, ports: { proto, ports } });
      });
    }
    this.checkSelfSources(
      src,
      dsts.map((d) => d.alias),
      true,
      pos,
    );
    // One grant per destination; non-self destinations first when any destination is not an autogroup.
    const isSelf = (a: Alias): boolean => a.kind === "autogroup" && a.name === "self";
    const ordered = dsts.some((d) => d.alias.kind !== "autogroup")
      ? [...dsts.filter((d) => !isSelf(d.alias)), ...dsts.filter((d) => isSelf(d.alias))]
      : dsts;
    return ordered.map((d) => ({ src, dst: [d.alias], ip: [d.ports], app: null, via: [], pos }));
  }

  private parseGrant(n: Node, field: string): Grant {
    const r = this.r;
    const o = r.object(n, field, ["src", "dst", "ip", "app", "via", "srcPosture"]);
    this.rejectPosture(o, field);
    const pos = r.pos(n);
    const src = o.get("src") ? this.srcAliases(o.get("src")!, `${field}.src`) : [];
    const dst = (o.get("dst") ? r.strings(o.get("dst")!, `${field}.dst`) : []).map((d) => {
      const a = this.alias(d, "dst");
      this.checkDst(a, d.field, d.value);
      return a;
    });
    const ip: ProtoPorts[] = [];
    for (const s of o.get("ip") ? r.strings(o.get("ip")!, `${field}.ip`) : []) ip.push(atField(s.field, s.value, s.pos, () => this.parseIpCap(s.value, s.pos)));
    let app: Record<string, unknown[]> | null = null;
    const appNode = o.get("app");
    if (appNode && !r.isNull(appNode)) {
      app = {};
      for (const [name, v] of r.object(appNode, `${field}.app`, null)) {
        const kp = r.keyPos(v);
        if (!/^[^/]+\/.+/.test(name) || name.includes("://")) {
          throw new PolicyError("invalid-value", `${field}.app: capability name must have the form {domain}/{path}`, kp);
        }
        if (name.startsWith("tailscale.com/") && !TS_CAP_ALLOW.has(name)) {
          throw new PolicyError("invalid-value", `${field}.app: capability name must not be in the tailscale.com domain`, kp);
        }
        app[name] = r.array(v, `${field}.app[${JSON.stringify(name)}]`).map((c) => r.plain(c));
      }
    }
    if (ip.length === 0 && (!app || Object.keys(app).length === 0)) {
      throw new PolicyError("invalid-value", `${field}: ip and app can not both be empty`, pos);
    }
    if (app && dst.some((d) => d.kind === "autogroup" && d.name === "internet")) {
      throw new PolicyError("invalid-value", `${field}: cannot use app grants with autogroup:internet`, pos);
    }
    const via: string[] = [];
    for (const v of o.get("via") ? r.strings(o.get("via")!, `${field}.via`) : []) {
      if (!this.tagOwners.has(v.value)) throw new PolicyError("unknown-reference", `tag ${JSON.stringify(v.value)} not found (not in tagOwners)`, v.pos, v.field, v.value);
      via.push(v.value);
    }
    this.checkSelfSources(src, dst, false, pos);
    return { src, dst, ip, app, via, pos };
  }

  private parseIpCap(s: string, pos: Pos): ProtoPorts {
    if (s === "*") return { proto: null, ports: [{ First: 0, Last: 65535 }] };
    let protoPart = "";
    let portPart = s;
    if (s.includes(":")) {
      const parts = s.split(":");
      if (parts.length !== 2) throw new PolicyError("invalid-value", `ip ${JSON.stringify(s)}: expected "proto:ports"`, pos);
      [protoPart, portPart] = parts;
      const p = parseProto(protoPart);
      if (typeof p === "string") throw new PolicyError("invalid-value", `ip ${JSON.stringify(s)}: ${p}`, pos);
      const ports = parsePorts(portPart);
      if (typeof ports === "string") throw new PolicyError("invalid-value", `port range ${JSON.stringify(portPart)}: ${ports}`, pos);
      return { proto: p, ports };
    }
    const ports = parsePorts(portPart);
    if (typeof ports === "string") throw new PolicyError("invalid-value", `port range ${JSON.stringify(portPart)}: ${ports}`, pos);
    return { proto: null, ports };
  }

  private parseSsh(n: Node, field: string): SshRule {
    const r = this.r;
    const o = r.object(n, field, ["action", "src", "dst", "users", "checkPeriod", "acceptEnv"]);
    const pos = r.pos(n);
    const actionNode = o.get("action");
    const rawAction = actionNode && !r.isNull(actionNode) ? r.string(actionNode, `${field}.action`) : "";
    const action = rawAction.trim();
    if (action === "") throw new PolicyError("invalid-value", `${field}: action must be specified`, actionNode ? r.pos(actionNode) : pos);
    if (action !== "accept" && action !== "check") {
      throw new PolicyError("invalid-value", `${JSON.stringify(rawAction)} is not a valid action`, r.pos(actionNode!));
    }
    const src = o.get("src") ? this.srcAliases(o.get("src")!, `${field}.src`, true) : [];
    const dst = (o.get("dst") ? r.strings(o.get("dst")!, `${field}.dst`) : []).map((d) => {
      // The service trims whitespace around SSH destinations.
      const a = this.alias(d, "", d.value.trim());
      const ok =
        a.kind === "tag" ||
        a.kind === "user" ||
        (a.kind === "autogroup" && (a.name === "self" || a.name === "member" || a.name === "tagged"));
      if (!ok) {
        throw new PolicyError("invalid-value", `invalid dst ${JSON.stringify(d.value)}: SSH destinations are tags, a user, autogroup:self, autogroup:member or autogroup:tagged`, d.pos, d.field, d.value);
      }
      return a;
    });
    checkSshSrcDst(src, dst);
    const usersNode = o.get("users");
    const users = usersNode && !r.isNull(usersNode) ? r.strings(usersNode, `${field}.users`) : [];
    if (users.length === 0) throw new PolicyError("invalid-value", `${field}: users must be specified`, usersNode ? r.pos(usersNode) : pos);
    for (const u of users) checkSshUser(u);
    const rule: SshRule = { action, src, dst, users: users.map((u) => u.value), usersPos: users.map((u) => u.pos), pos };
    const cp = o.get("checkPeriod");
    if (cp && !r.isNull(cp)) {
      const v = r.string(cp, `${field}.checkPeriod`);
      if (v === "always") rule.checkPeriod = 0;
      else {
        const d = parseGoDuration(v);
        if (d === null) throw new PolicyError("invalid-value", `time: invalid duration ${JSON.stringify(v)}`, r.pos(cp));
        if (d < 0) throw new PolicyError("invalid-value", `checkPeriod ${formatGoDuration(d)} must be a positive duration`, r.pos(cp));
        if (d > MAX_CHECK_PERIOD) {
          throw new PolicyError("invalid-value", `checkPeriod ${formatGoDuration(d)} is above the max (168h)`, r.pos(cp));
        }
        rule.checkPeriod = d;
      }
    }
    const env = o.get("acceptEnv");
    if (env && !r.isNull(env)) {
      rule.acceptEnv = r.strings(env, `${field}.acceptEnv`).map((e) => {
        if (e.value === "") throw new PolicyError("invalid-value", "acceptEnv values cannot be empty", e.pos);
        return e.value;
      });
    }
    return rule;
  }

  /** Rejects `srcPosture` (device postures are not implemented) unless empty. */
  private rejectPosture(o: Map<string, Node>, field: string): void {
    const n = o.get("srcPosture");
    if (n && !this.r.isNull(n) && this.r.array(n, `${field}.srcPosture`).length > 0) {
      throw new PolicyError("unknown-field", "device postures are not supported by Lattice (the rule would apply without them)", this.r.keyPos(n), `${field}.srcPosture`);
    }
  }

  /**
   * Parses `ipsets` (Tailscale kb/1387): "ipset:NAME" → entries "[add |remove ]TARGET",
   * TARGET an IP, CIDR, `host:NAME` (or a bare hosts name), `ipset:NAME` defined earlier
   * or later (no cycles) or autogroup:internet. The set is every added address minus every
   * removed one, whatever the order of the entries.
   */
  private parseIpSets(n: Node): void {
    const r = this.r;
    const defs = new Map<string, { value: string; pos: Pos; field: string }[]>();
    for (const [name, v] of r.object(n, "ipsets", null)) {
      const field = `ipsets[${JSON.stringify(name)}]`;
      if (!/^ipset:[A-Za-z][A-Za-z0-9_.-]*$/.test(name)) {
        throw new PolicyError("invalid-value", `IP set names are "ipset:" followed by a letter, then letters, digits, "-", "_" or "."`, r.keyPos(v), "ipsets", name);
      }
      defs.set(name, r.strings(v, field));
    }
    const resolving = new Set<string>();
    const resolve = (name: string): { ranges: IPRange[]; internet: boolean } => {
      const done = this.ipsets.get(name);
      if (done) return done;
      resolving.add(name);
      const add: IPRange[] = [];
      const remove: IPRange[] = [];
      let internet = false;
      for (const e of defs.get(name)!) {
        atField(e.field, e.value, e.pos, () => {
          const m = /^(?:(add|remove)\s+)?(\S+)$/.exec(e.value.trim());
          if (!m) throw new PolicyError("invalid-value", `expected "add TARGET", "remove TARGET" or "TARGET"`, e.pos);
          const op = m[1] ?? "add";
          const target = m[2];
          let ranges: readonly IPRange[];
          if (target === "autogroup:internet") {
            ranges = INTERNET_RANGES;
            if (op === "add") internet = true;
          } else if (target.startsWith("ipset:")) {
            if (!defs.has(target)) throw new PolicyError("unknown-reference", `IP set not found: ${JSON.stringify(target)}`, e.pos);
            if (resolving.has(target)) throw new PolicyError("invalid-value", `IP set ${JSON.stringify(target)} refers to itself (circular reference)`, e.pos);
            const inner = resolve(target);
            ranges = inner.ranges;
            if (op === "add" && inner.internet) internet = true;
          } else if (target.startsWith("host:") || this.hosts.has(target)) {
            const h = this.hosts.get(target.startsWith("host:") ? target.slice(5) : target);
            if (!h) throw new PolicyError("unknown-reference", `host not found: ${JSON.stringify(target)} (not in hosts)`, e.pos);
            ranges = [h];
          } else {
            const p = parsePrefix(target);
            if (!p) {
              const why = prefixError(target);
              throw new PolicyError(
                "invalid-value",
                why ?? `${JSON.stringify(target)} is not an IP, CIDR, host:NAME, ipset:NAME or autogroup:internet (IP sets hold no users, groups or tags)`,
                e.pos,
              );
            }
            ranges = [{ v6: p.v6, lo: p.lo, hi: p.hi }];
          }
          (op === "add" ? add : remove).push(...ranges);
        });
      }
      resolving.delete(name);
      const out = { ranges: subtractRanges(add, remove), internet };
      this.ipsets.set(name, out);
      return out;
    };
    for (const name of defs.keys()) resolve(name);
  }

  private parseAutoApprovers(n: Node, policy: Policy): void {
    const r = this.r;
    const o = r.object(n, "autoApprovers", ["routes", "exitNode", "services"]);
    const services = o.get("services");
    if (services && !r.isNull(services)) {
      throw new PolicyError("unknown-field", "service auto-approval is not supported by Lattice", r.keyPos(services), "autoApprovers.services");
    }
    const routes = o.get("routes");
    if (routes && !r.isNull(routes)) {
      for (const [prefix, v] of r.object(routes, "autoApprovers.routes", null)) {
        if (!parsePrefix(prefix)) {
          throw new PolicyError("invalid-value", prefixError(prefix) ?? "invalid prefix", r.keyPos(v), "autoApprovers.routes", prefix);
        }
        const list = r.strings(v, `autoApprovers.routes[${JSON.stringify(prefix)}]`).map((s) => this.alias(s, ""));
        policy.autoApproverRoutes.set(prefix, list);
      }
    }
    const exit = o.get("exitNode");
    if (exit && !r.isNull(exit)) {
      policy.autoApproverExit = r.strings(exit, "autoApprovers.exitNode").map((s) => this.alias(s, ""));
    }
  }

  private parseNodeAttr(n: Node, field: string): NodeAttr {
    const r = this.r;
    const o = r.object(n, field, ["target", "attr", "ipPool", "app"]);
    const target = (o.get("target") ? r.strings(o.get("target")!, `${field}.target`) : []).map((s) =>
      atField(s.field, s.value, s.pos, () => {
        let a: Alias;
        try {
          a = parseAlias(s.value, s.pos);
        } catch (e) {
          throw new PolicyError("invalid-value", `invalid address${e instanceof PolicyError ? ` (${e.detail})` : ""}`, s.pos);
        }
        a.field = s.field;
        if (a.kind === "tag" && !this.tagOwners.has(a.name)) {
          throw new PolicyError("unknown-reference", `tag not found: ${JSON.stringify(a.name)} (not in tagOwners)`, s.pos);
        }
        this.checkRef(a, "");
        if (a.kind === "autogroup" && a.name !== "member" && a.name !== "tagged" && a.name !== "admin" && a.name !== "owner") {
          throw new PolicyError("invalid-value", `${JSON.stringify(s.value)} cannot be used in nodeAttrs`, s.pos);
        }
        return a;
      }),
    );
    const pool = o.get("ipPool");
    if (pool && !r.isNull(pool)) {
      for (const s of r.strings(pool, `${field}.ipPool`)) {
        const p = parsePrefix(s.value);
        if (!p) throw new PolicyError("invalid-value", prefixError(s.value) ?? "invalid IP prefix", s.pos, s.field, s.value);
        for (const res of RESERVED_POOL_RANGES) {
          if (rangesOverlap(p, parsePrefix(res)!)) {
            throw new PolicyError("invalid-value", `overlaps ${res}, which Tailscale reserves`, s.pos, s.field, s.value);
          }
        }
      }
    }
    const attr = o.get("attr") ? r.strings(o.get("attr")!, `${field}.attr`).map((s) => s.value) : [];
    return { target, attr, pos: r.pos(n) };
  }

  private parseTest(n: Node, field: string): PolicyTest {
    const r = this.r;
    const o = r.object(n, field, ["src", "proto", "accept", "deny", "srcPostureAttrs"]);
    const posture = o.get("srcPostureAttrs");
    if (posture && !r.isNull(posture)) {
      throw new PolicyError("unknown-field", "device postures are not supported by Lattice", r.keyPos(posture), `${field}.srcPostureAttrs`);
    }
    const accept = o.get("accept") ? r.strings(o.get("accept")!, `${field}.accept`) : [];
    const deny = o.get("deny") ? r.strings(o.get("deny")!, `${field}.deny`) : [];
    if (accept.length === 0 && deny.length === 0) {
      throw new PolicyError("invalid-value", "a test needs at least one \"accept\" or \"deny\" destination (it would assert nothing)", r.pos(n), field);
    }
    const t: PolicyTest = {
      src: o.get("src") && !r.isNull(o.get("src")) ? r.string(o.get("src")!, `${field}.src`) : "",
      accept: accept.map((s) => s.value),
      deny: deny.map((s) => s.value),
      pos: r.pos(n),
      field,
      acceptPos: accept.map((s) => s.pos),
      denyPos: deny.map((s) => s.pos),
    };
    const proto = o.get("proto");
    if (proto && !r.isNull(proto)) t.proto = r.string(proto, `${field}.proto`);
    return t;
  }

  private parseSshTest(n: Node, field: string): SshTest {
    const r = this.r;
    const o = r.object(n, field, ["src", "dst", "accept", "check", "deny", "srcPostureAttrs"]);
    const list = (k: string): string[] => (o.get(k) ? r.strings(o.get(k)!, `${field}.${k}`).map((s) => s.value) : []);
    const dstStrings = o.get("dst") ? r.strings(o.get("dst")!, `${field}.dst`) : [];
    for (const d of dstStrings) {
      if (d.value === "autogroup:internet" || (parsePrefix(d.value) && d.value.includes("/"))) {
        throw new PolicyError("invalid-value", `SSH tests dst contains disallowed element ${JSON.stringify(d.value)}`, d.pos);
      }
    }
    const t = { accept: list("accept"), check: list("check"), deny: list("deny") };
    if (t.accept.length + t.check.length + t.deny.length === 0) {
      throw new PolicyError("invalid-value", 'an SSH test needs at least one "accept", "check" or "deny" user (it would assert nothing)', r.pos(n), field);
    }
    return {
      src: o.get("src") && !r.isNull(o.get("src")) ? r.string(o.get("src")!, `${field}.src`) : "",
      dst: dstStrings.map((d) => d.value),
      ...t,
      pos: r.pos(n),
    };
  }
}
