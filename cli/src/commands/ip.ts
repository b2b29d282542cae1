/**
 * `lattice ip [-1|-4|-6] [peer]` (Tailscale's ip.go): the node's (or the peer's) tailnet
 * addresses, one per line; -4/-6 select a family, -1 only the first address.
 */
import type { CommandContext, ExitCode } from "../context.js";
import { CliError, UsageError } from "../errors.js";
import { ipFamily, resolveNode } from "../resolve.js";

export interface IpOptions {
  want4?: boolean;
  want6?: boolean;
  want1?: boolean;
}

export async function runIp(ctx: CommandContext, opts: IpOptions, peer: string | undefined): Promise<ExitCode> {
  if ([opts.want1, opts.want4, opts.want6].filter(Boolean).length > 1) {
    throw new UsageError("lattice ip -1, -4, and -6 are mutually exclusive");
  }
  const st = await ctx.client.status(peer !== undefined);
  let ips = st.TailscaleIPs ?? [];
  if (peer !== undefined) ips = resolveNode(st, peer).node?.TailscaleIPs ?? [];
  if (ips.length === 0) throw new CliError("ERR_NO_IP", `no current Lattice IPs; state: ${st.BackendState}`);
  if (opts.want1) ips = ips.slice(0, 1);
  const both = !opts.want4 && !opts.want6;
  const shown = ips.filter((ip) => both || (opts.want4 && ipFamily(ip) === 4) || (opts.want6 && ipFamily(ip) === 6));
  if (shown.length === 0) throw new CliError("ERR_NO_IP", opts.want4 ? "no Lattice IPv4 address" : "no Lattice IPv6 address");
  ctx.io.out(shown.map((ip) => ip + "\n").join(""));
  return 0;
}
