/**
 * `lattice bugreport [note]` prints the daemon's marker (`BUG-<node>-<time>-<random>`) to
 * quote in a bug report; `lattice version [--daemon]` prints the CLI's version as the first
 * line (no daemon needed, as Tailscale's), with `--daemon` `Client: X` / `Daemon: Y`.
 */
import { readFileSync } from "node:fs";
import type { CommandContext, ExitCode } from "../context.js";

export async function runBugreport(ctx: CommandContext, note: string | undefined): Promise<ExitCode> {
  const marker = (await ctx.client.bugreport(note ?? "")).trim();
  ctx.io.out(marker + "\n");
  return 0;
}

/** The version of @lattice/cli (its package.json, next to src/ and dist/). */
export function cliVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

export async function runVersion(ctx: CommandContext, daemon: boolean): Promise<ExitCode> {
  if (!daemon) {
    ctx.io.out(`${cliVersion()}\n  node: ${process.version}\n`);
    return 0;
  }
  const v = await ctx.client.version();
  ctx.io.out(`Client: ${cliVersion()}\nDaemon: ${v.Version}\n`);
  return 0;
}
