/**
 * `lattice netcheck [--format text|json|json-line]` (Tailscale's netcheck.go). The daemon
 * runs the check (GET /localapi/v0/netcheck). Text is Tailscale's "Report:" block; DERP
 * regions are named by id (the report carries no region names), fastest first. `json` is the
 * report tab-indented as Tailscale prints it, `json-line` one line.
 */
import type { CommandContext, ExitCode } from "../context.js";
import { FlagValueError } from "../errors.js";
import { formatGoDurationMs } from "../format.js";
import type { NetcheckReport } from "../types.js";

export type NetcheckFormat = "text" | "json" | "json-line";

export function parseNetcheckFormat(value: string | undefined): NetcheckFormat {
  if (value === undefined || value === "" || value === "text") return "text";
  if (value === "json" || value === "json-line") return value;
  throw new FlagValueError("--format", value, 'must be "text", "json" or "json-line"');
}

export async function runNetcheck(ctx: CommandContext, format: NetcheckFormat): Promise<ExitCode> {
  const report = await ctx.client.netcheck();
  if (format === "json") ctx.io.out(JSON.stringify(report, null, "\t") + "\n");
  else if (format === "json-line") ctx.io.out(JSON.stringify(report) + "\n");
  else ctx.io.out(formatNetcheck(report, ctx.io.now()));
  return 0;
}

/** Tailscale's text report; `nowMs` is printed as the report time (local time zone). */
export function formatNetcheck(r: NetcheckReport, nowMs: number): string {
  const lines: string[] = ["", "Report:"];
  lines.push(`\t* Time: ${new Date(nowMs).toISOString()}`);
  lines.push(`\t* UDP: ${r.UDP}`);
  lines.push(r.GlobalV4 ? `\t* IPv4: yes, ${r.GlobalV4}` : "\t* IPv4: (no addr found)");
  if (r.GlobalV6) lines.push(`\t* IPv6: yes, ${r.GlobalV6}`);
  else if (r.IPv6) lines.push("\t* IPv6: (no addr found)");
  else lines.push("\t* IPv6: no");
  lines.push(`\t* MappingVariesByDestIP: ${r.MappingVariesByDestIP === null || r.MappingVariesByDestIP === undefined ? "" : String(r.MappingVariesByDestIP)}`);
  const lat = Object.entries(r.RegionLatency ?? {});
  if (lat.length === 0) {
    lines.push("\t* Nearest DERP: unknown (no response to latency probes)");
  } else {
    lines.push(r.PreferredDERP ? `\t* Nearest DERP: region ${r.PreferredDERP}` : "\t* Nearest DERP: [none]");
    lines.push("\t* DERP latency:");
    lat.sort((a, b) => a[1] - b[1] || Number(a[0]) - Number(b[0]));
    for (const [id, ns] of lat) {
      const ms = Math.round(ns / 100_000) / 10; // Tailscale rounds to 0.1 ms
      lines.push(`\t\t- ${id.padStart(3)}: ${formatGoDurationMs(ms).padEnd(7)}`.trimEnd());
    }
  }
  return lines.map((l) => l + "\n").join("");
}
