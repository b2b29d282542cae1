/**
 * `lattice status [--json] [--peers] [--self] [--active]` (Tailscale's cmd/tailscale/cli/
 * status.go): a table `IP  Hostname  Owner  OS  Status`, Self first, then the peers in
 * Tailscale's order; health problems after the table as `# Health check:` lines. `--json`
 * prints the daemon's Status JSON unchanged (2-space indent; `--active` drops idle peers).
 * A daemon not Running/Starting: the state message on stdout, exit 1.
 */
import type { CommandContext, ExitCode } from "../context.js";
import { comparePeers, displayName, notRunningDescription, ownerLogin, peerStatusText, tabulate } from "../format.js";
import type { PeerStatus, Status } from "../types.js";

export interface StatusOptions {
  json?: boolean;
  peers?: boolean;
  self?: boolean;
  active?: boolean;
}

export async function runStatus(ctx: CommandContext, opts: StatusOptions): Promise<ExitCode> {
  const wantPeers = opts.peers !== false;
  const wantSelf = opts.self !== false;
  const st = await ctx.client.status(wantPeers);
  if (opts.json) {
    if (opts.active && st.Peer) {
      for (const [k, ps] of Object.entries(st.Peer)) if (!ps.Active) delete st.Peer[k];
    }
    ctx.io.out(JSON.stringify(st, null, 2) + "\n");
    return 0;
  }
  const description = notRunningDescription(st);
  if (description !== null) {
    ctx.io.out(description + "\n");
    return 1;
  }
  ctx.io.out(formatStatusTable(st, { self: wantSelf, peers: wantPeers, active: opts.active === true }, ctx.io.now()));
  if (st.Health && st.Health.length > 0) ctx.io.out("\n" + formatHealth(st.Health));
  return 0;
}

/** The table of `status` (no header, like Tailscale without `--header`). */
export function formatStatusTable(st: Status, sel: { self: boolean; peers: boolean; active: boolean }, nowMs: number): string {
  const rows: string[][] = [];
  const row = (ps: PeerStatus, self = false): string[] => [ps.TailscaleIPs?.[0] ?? "", displayName(ps), ownerLogin(st, ps), ps.OS ?? "", peerStatusText(ps, nowMs, self)];
  if (sel.self && st.Self) rows.push(row(st.Self, true));
  if (sel.peers) {
    const peers = Object.values(st.Peer ?? {}).sort(comparePeers);
    for (const ps of peers) if (!sel.active || ps.Active) rows.push(row(ps));
  }
  return tabulate(rows, { padding: 2 });
}

export function formatHealth(health: readonly string[]): string {
  return "# Health check:\n" + health.map((m) => `#     - ${m}\n`).join("");
}
