/**
 * The Linux router's planner (Tailscale's wgengine/router linux router, cut small; facts in
 * PROTOCOLS.md "Linux routing"): turns a desired {@link RouterConfig} into the argv lists
 * of `ip route` / `ip rule` / `iptables` / `ip6tables` that take the host from what was
 * applied to it. Pure: no I/O (router.ts runs the commands).
 *
 * What is managed, per address family:
 * - policy rules (while latticed is up): pref 5210 `fwmark 0x80000/0xff0000 lookup main`,
 *   5230 same mark `lookup default`, 5250 same mark `unreachable`, 5270 `lookup 52`.
 *   latticed's own UDP (magicsock) carries SO_MARK 0x80000, so it never enters table 52.
 * - table 52: `PREFIX dev IF` routes (peers' subnet routes with RouteAll; 0.0.0.0/0 and
 *   ::/0 with an exit node) and `throw PREFIX` routes (the control server's and DERP
 *   nodes' addresses while an exit node is in use — Node's TCP sockets cannot be SO_MARKed
 *   before connect — and directly connected LANs with ExitNodeAllowLANAccess). The
 *   tailnet ranges stay in the main table on the TUN (tun-config.ts).
 * - a subnet router / exit node: filter chain `lattice-forward` jumped to from position 1
 *   of FORWARD (MARK 0x40000/0xff0000 on `-i IF`, ACCEPT that mark, DROP `-o IF` from the
 *   tailnet range, ACCEPT `-o IF`) and nat chain `lattice-postrouting` from position 1 of
 *   POSTROUTING (MASQUERADE of the mark unless NoSNAT).
 *
 * Ordering: throw routes go in before the routes they punch holes into (an exit node's
 * default route never catches the control connection), rules after the table is filled;
 * removal runs in the reverse order.
 */

/** The routing table of peer/exit routes. */
export const ROUTE_TABLE = "52";
/** Mark of latticed's own traffic (bypasses table 52). */
export const BYPASS_MARK = "0x80000";
/** Mark of traffic forwarded from the tunnel (SNAT). */
export const SUBNET_MARK = "0x40000";
/** The mask of both marks. */
export const MARK_MASK = "0xff0000";
/** The policy rule preferences, in the order they are added. */
export const RULE_PREFS = ["5210", "5230", "5250", "5270"] as const;
/** iptables chains. */
export const FORWARD_CHAIN = "lattice-forward";
export const POSTROUTING_CHAIN = "lattice-postrouting";
/** The tailnet ranges (DROP from them towards the tunnel when not from the tunnel). */
export const TAILNET_RANGE = { 4: "100.64.0.0/10", 6: "fd7a:115c:a1e0::/48" } as const;

/** The desired state (null: latticed is down — nothing of ours on the host). */
export interface RouterConfig {
  /** Prefixes routed `dev IF` in table 52 (canonical CIDRs, both families). */
  routes: readonly string[];
  /** Prefixes with `throw` routes in table 52. A prefix also in `routes` is routed, not thrown. */
  throws: readonly string[];
  /** Subnet router / exit node: the forwarding chains, `snat` = MASQUERADE (not NoSNAT). */
  forward: { snat: boolean } | null;
}

/** One command: the program and its arguments (run without a shell). */
export interface Cmd {
  argv: readonly string[];
  /** An IPv6 command (its failure only warns: IPv6 may be disabled). */
  v6: boolean;
  /** Cleanup: run again until it fails (removes duplicates left by a crash). */
  repeat?: boolean;
}

/** One managed thing, added or removed as a unit. */
export interface PlanStep {
  op: "add" | "del";
  /** Stable key: "rules4", "route6 ::/0", "throw4 10.0.0.1/32", "fwd4", "nat4", "snat4". */
  item: string;
  cmds: Cmd[];
}

type Fam = 4 | 6;

function fam(prefix: string): Fam {
  return prefix.includes(":") ? 6 : 4;
}

const MARK = `${BYPASS_MARK}/${MARK_MASK}`;
const SMARK = `${SUBNET_MARK}/${MARK_MASK}`;

function ipCmd(f: Fam, ...args: string[]): Cmd {
  return { argv: ["ip", `-${f}`, ...args], v6: f === 6 };
}

function xt(f: Fam, ...args: string[]): Cmd {
  return { argv: [f === 6 ? "ip6tables" : "iptables", "-w", ...args], v6: f === 6 };
}

/** The rule selectors in add order. */
function ruleSpecs(): string[][] {
  return [
    ["pref", "5210", "fwmark", MARK, "table", "main"],
    ["pref", "5230", "fwmark", MARK, "table", "default"],
    ["pref", "5250", "fwmark", MARK, "type", "unreachable"],
    ["pref", "5270", "table", ROUTE_TABLE],
  ];
}

/** The commands that add (`del` false) or remove an item. */
export function itemCmds(item: string, del: boolean, ifname: string): Cmd[] {
  const [kind, prefix] = item.split(" ") as [string, string | undefined];
  const f: Fam = kind.endsWith("6") ? 6 : 4;
  switch (kind.slice(0, -1)) {
    case "rules": {
      const specs = ruleSpecs();
      return del ? specs.reverse().map((s) => ipCmd(f, "rule", "del", ...s)) : specs.map((s) => ipCmd(f, "rule", "add", ...s));
    }
    case "route":
      return [ipCmd(f, "route", del ? "del" : "replace", prefix!, "dev", ifname, "table", ROUTE_TABLE)];
    case "throw":
      return [ipCmd(f, "route", del ? "del" : "replace", "throw", prefix!, "table", ROUTE_TABLE)];
    case "fwd":
      return del
        ? [xt(f, "-D", "FORWARD", "-j", FORWARD_CHAIN), xt(f, "-F", FORWARD_CHAIN), xt(f, "-X", FORWARD_CHAIN)]
        : [
            xt(f, "-N", FORWARD_CHAIN),
            xt(f, "-A", FORWARD_CHAIN, "-i", ifname, "-j", "MARK", "--set-mark", SMARK),
            xt(f, "-A", FORWARD_CHAIN, "-m", "mark", "--mark", SMARK, "-j", "ACCEPT"),
            xt(f, "-A", FORWARD_CHAIN, "-o", ifname, "-s", TAILNET_RANGE[f], "-j", "DROP"),
            xt(f, "-A", FORWARD_CHAIN, "-o", ifname, "-j", "ACCEPT"),
            xt(f, "-I", "FORWARD", "1", "-j", FORWARD_CHAIN),
          ];
    case "nat":
      return del
        ? [xt(f, "-t", "nat", "-D", "POSTROUTING", "-j", POSTROUTING_CHAIN), xt(f, "-t", "nat", "-F", POSTROUTING_CHAIN), xt(f, "-t", "nat", "-X", POSTROUTING_CHAIN)]
        : [xt(f, "-t", "nat", "-N", POSTROUTING_CHAIN), xt(f, "-t", "nat", "-I", "POSTROUTING", "1", "-j", POSTROUTING_CHAIN)];
    case "snat":
      return [xt(f, "-t", "nat", del ? "-D" : "-A", POSTROUTING_CHAIN, "-m", "mark", "--mark", SMARK, "-j", "MASQUERADE")];
    default:
      throw new RangeError(`unknown router item ${JSON.stringify(item)}`);
  }
}

/** The items of a config, in add order (removal uses the reverse). */
export function configItems(c: RouterConfig | null): string[] {
  if (c === null) return [];
  const routes = [...new Set(c.routes)];
  const throws = [...new Set(c.throws)].filter((p) => !routes.includes(p));
  const out: string[] = [];
  for (const p of throws) out.push(`throw${fam(p)} ${p}`);
  for (const p of routes) out.push(`route${fam(p)} ${p}`);
  out.push("rules4", "rules6");
  if (c.forward) {
    out.push("fwd4", "fwd6", "nat4", "nat6");
    if (c.forward.snat) out.push("snat4", "snat6");
  }
  return out;
}

/**
 * The steps from `applied` (items as {@link configItems} returned them last time, in add
 * order) to `next`: removals of items no longer wanted (reverse order), then additions.
 */
export function planRouter(applied: readonly string[], next: RouterConfig | null, ifname: string): PlanStep[] {
  const want = configItems(next);
  const wantSet = new Set(want);
  const have = new Set(applied);
  const steps: PlanStep[] = [];
  for (const item of [...applied].reverse()) if (!wantSet.has(item)) steps.push({ op: "del", item, cmds: itemCmds(item, true, ifname) });
  for (const item of want) if (!have.has(item)) steps.push({ op: "add", item, cmds: itemCmds(item, false, ifname) });
  return steps;
}

/**
 * Crash recovery: commands removing anything of ours a previous latticed left behind
 * (rules at our prefs, table 52, our chains and their jumps). Every command may fail
 * (nothing to remove); deletions repeat until they do.
 */
export function cleanupCmds(): Cmd[] {
  const out: Cmd[] = [];
  for (const f of [4, 6] as const) {
    for (const pref of [...RULE_PREFS].reverse()) out.push({ ...ipCmd(f, "rule", "del", "pref", pref), repeat: true });
    out.push(ipCmd(f, "route", "flush", "table", ROUTE_TABLE));
    out.push({ ...xt(f, "-D", "FORWARD", "-j", FORWARD_CHAIN), repeat: true }, xt(f, "-F", FORWARD_CHAIN), xt(f, "-X", FORWARD_CHAIN));
    out.push({ ...xt(f, "-t", "nat", "-D", "POSTROUTING", "-j", POSTROUTING_CHAIN), repeat: true }, xt(f, "-t", "nat", "-F", POSTROUTING_CHAIN), xt(f, "-t", "nat", "-X", POSTROUTING_CHAIN));
  }
  return out;
}
