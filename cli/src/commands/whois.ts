/**
 * `lattice whois [--json] IP[:port]` (Tailscale's whois.go): the node and user behind a
 * tailnet address. Text layout as Tailscale's (tabwriter minwidth 10, padding 5):
 * `Machine:` Name (no trailing dot), ID (StableID), Addresses (`[a b]`), Tags for a tagged
 * node, else `User:` Name (login), ID. Unknown address: the daemon's 404 → exit 1.
 */
import type { CommandContext, ExitCode } from "../context.js";
import { FlagValueError } from "../errors.js";
import { tabulate } from "../format.js";
import { ipFamily } from "../resolve.js";
import type { WhoIsResponse } from "../types.js";

export async function runWhois(ctx: CommandContext, addr: string, json: boolean): Promise<ExitCode> {
  checkWhoisArg(addr);
  const who = await ctx.client.whois(addr);
  ctx.io.out(json ? JSON.stringify(who, null, 2) + "\n" : formatWhois(who));
  return 0;
}

export function formatWhois(who: WhoIsResponse): string {
  const n = who.Node;
  const rows: string[][] = [["Machine:"]];
  rows.push(["  Name:", (n.Name ?? "").replace(/\.$/, "")]);
  rows.push(["  ID:", n.StableID ?? ""]);
  rows.push(["  Addresses:", `[${(n.Addresses ?? []).join(" ")}]`]);
  if ((n.AllowedIPs ?? []).length > 2) rows.push(["  AllowedIPs:", `[${(n.AllowedIPs ?? []).slice(2).join(" ")}]`]);
  if (n.Tags && n.Tags.length > 0) {
    rows.push(["  Tags:", n.Tags.join(", ")]);
  } else {
    rows.push(["User:"]);
    rows.push(["  Name:", who.UserProfile?.LoginName ?? ""]);
    rows.push(["  ID:", String(who.UserProfile?.ID ?? "")]);
  }
  let out = tabulate(rows, { minWidth: 10, padding: 5 });
  const caps = Object.entries(who.CapMap ?? {});
  if (caps.length > 0) {
    out += "Capabilities:\n";
    for (const [cap, vals] of caps) {
      if (vals && vals.length > 0) out += `  - ${cap}:\n      ${JSON.stringify(vals, null, 2).split("\n").join("\n      ")}\n`;
      else out += `  - ${cap}\n`;
    }
  }
  return out;
}

/** `IP`, `IP:port`, `[IPv6]:port` or `nodekey:<64 hex>` (what the LocalAPI takes); else exit 2. */
export function checkWhoisArg(addr: string): void {
  if (/^nodekey:[0-9a-f]{64}$/.test(addr) || ipFamily(addr) !== 0) return;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr);
  if (m && Number(m[3]) <= 65535 && ipFamily(m[1] ?? m[2]!) === (m[1] !== undefined ? 6 : 4)) return;
  throw new FlagValueError("IP[:port]", addr, "expected a tailnet IP, IP:port, [IPv6]:port or nodekey:<hex>");
}
