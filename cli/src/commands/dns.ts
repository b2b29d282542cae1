/**
 * `lattice dns status [--json]`: latticed's MagicDNS and host-resolver configuration
 * (GET /localapi/v0/dns-status). `--json` prints the LocalAPI object as is. Text, one
 * fact per line (Tailscale's `dns status` is longer; these are the facts Lattice has):
 *
 *     MagicDNS: enabled
 *     Tailnet domain: tail.example
 *     Mode: direct (/etc/resolv.conf)
 *     Nameservers given to the host: 100.100.100.100 fd7a:115c:a1e0::53
 *     Search domains: tail.example
 *     Resolvers: 10.0.0.1
 *     Split DNS routes:
 *       internal.example -> 100.64.0.9
 *
 * Empty lists print `(none)`; a route without resolvers prints `-> (MagicDNS)`. Mode "off":
 * Lattice does not configure the host (--accept-dns=false, not running, MagicDNS off).
 */
import type { CommandContext, ExitCode } from "../context.js";
import type { DnsStatus } from "../types.js";

export async function runDnsStatus(ctx: CommandContext, json: boolean): Promise<ExitCode> {
  const s = await ctx.client.dnsStatus();
  ctx.io.out(json ? JSON.stringify(s, null, 2) + "\n" : formatDnsStatus(s));
  return 0;
}

function list(xs: readonly string[] | null | undefined): string {
  return xs && xs.length > 0 ? xs.join(" ") : "(none)";
}

/** The text form (see the file comment). */
export function formatDnsStatus(s: DnsStatus): string {
  const lines = [
    `MagicDNS: ${s.MagicDNS ? "enabled" : "disabled"}`,
    `Tailnet domain: ${s.Domain === "" ? "(none)" : s.Domain}`,
    `Mode: ${s.Mode}${s.Mode !== "off" && s.ResolvConf !== "" ? ` (${s.ResolvConf})` : ""}`,
    `Nameservers given to the host: ${list(s.Nameservers)}`,
    `Search domains: ${list(s.SearchDomains)}`,
    `Resolvers: ${list(s.Resolvers)}`,
  ];
  const routes = Object.entries(s.Routes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (routes.length === 0) lines.push("Split DNS routes: (none)");
  else {
    lines.push("Split DNS routes:");
    for (const [suffix, rs] of routes) lines.push(`  ${suffix} -> ${rs.length > 0 ? rs.join(" ") : "(MagicDNS)"}`);
  }
  return lines.join("\n") + "\n";
}
