/**
 * `lattice exit-node list [--json]` and `lattice exit-node suggest` (Tailscale's
 * cmd/tailscale/cli/exitnode.go; Lattice has no node locations, so COUNTRY and CITY are `-`
 * and there is no `--filter`).
 *
 * list: `IP  HOSTNAME  COUNTRY  CITY  STATUS`, one row per peer offering an exit node
 * (ExitNodeOption, or a default route in its AllowedIPs), sorted by HOSTNAME (the MagicDNS
 * name without the trailing dot). STATUS: `selected` (the current exit node; `selected but
 * offline` when it is offline, as Tailscale), `offline`, else `-`. None: `No exit nodes
 * found.` (exit 0). `--json`: an array of `{ID, Name, TailscaleIPs, Online, Selected,
 * Location: null}` in the same order (`[]` for none).
 *
 * suggest: GET /localapi/v0/suggest-exit-node → `Suggested exit node: NAME` and how to
 * accept it (NAME = FQDN without the trailing dot); none (`no_exit_nodes`) → `No exit node
 * suggestion is available.` on stdout, exit 1.
 *
 * A daemon not Running: the state message on stdout, exit 1 (as `status`).
 */
import type { CommandContext, ExitCode } from "../context.js";
import { LocalApiError, NotRunningStateError } from "../errors.js";
import { notRunningDescription, tabulate } from "../format.js";
import { offersExitNode } from "../routes.js";
import type { PeerStatus } from "../types.js";

/** One row of `exit-node list --json`. */
export interface ExitNodeListEntry {
  ID: string;
  Name: string;
  TailscaleIPs: string[];
  Online: boolean;
  Selected: boolean;
  Location: null;
}

function fqdn(ps: PeerStatus): string {
  const n = (ps.DNSName ?? "").replace(/\.$/, "");
  return n !== "" ? n : ps.HostName;
}

function statusWord(ps: PeerStatus): string {
  if (ps.ExitNode) return ps.Online ? "selected" : "selected but offline";
  return ps.Online ? "-" : "offline";
}

export async function runExitNodeList(ctx: CommandContext, json: boolean): Promise<ExitCode> {
  const st = await ctx.client.status(true);
  const description = notRunningDescription(st);
  if (description !== null) throw new NotRunningStateError(description);
  const peers = Object.values(st.Peer ?? {})
    .filter(offersExitNode)
    .sort((a, b) => (fqdn(a) < fqdn(b) ? -1 : fqdn(a) > fqdn(b) ? 1 : 0));
  if (json) {
    const out: ExitNodeListEntry[] = peers.map((ps) => ({
      ID: ps.ID, Name: fqdn(ps), TailscaleIPs: ps.TailscaleIPs ?? [], Online: ps.Online, Selected: ps.ExitNode === true, Location: null,
    }));
    ctx.io.out(JSON.stringify(out, null, 2) + "\n");
    return 0;
  }
  if (peers.length === 0) {
    ctx.io.out("No exit nodes found.\n");
    return 0;
  }
  const rows = [["IP", "HOSTNAME", "COUNTRY", "CITY", "STATUS"], ...peers.map((ps) => [ps.TailscaleIPs?.[0] ?? "-", fqdn(ps), "-", "-", statusWord(ps)])];
  ctx.io.out(tabulate(rows, { padding: 2 }));
  return 0;
}

export async function runExitNodeSuggest(ctx: CommandContext): Promise<ExitCode> {
  let name: string;
  try {
    const s = await ctx.client.suggestExitNode();
    name = (s.Name ?? "").replace(/\.$/, "");
  } catch (e) {
    if (e instanceof LocalApiError && e.apiCode === "no_exit_nodes") {
      ctx.io.out("No exit node suggestion is available.\n");
      return 1;
    }
    throw e;
  }
  if (name === "") {
    ctx.io.out("No exit node suggestion is available.\n");
    return 1;
  }
  ctx.io.out(`Suggested exit node: ${name}\nTo accept this suggestion, use \`lattice set --exit-node=${name}\`.\n`);
  return 0;
}
