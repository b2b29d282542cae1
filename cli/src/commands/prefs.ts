/**
 * `lattice down`, `lattice logout`, `lattice set` (Tailscale's down.go, logout.go, set.go).
 * All print nothing on success; `down` on a stopped node says `Lattice was already stopped.`
 */
import type { CommandContext, ExitCode } from "../context.js";
import { UsageError } from "../errors.js";
import type { PrefsPatch } from "../types.js";

export async function runDown(ctx: CommandContext): Promise<ExitCode> {
  const st = await ctx.client.status(false);
  if (st.BackendState === "Stopped") {
    ctx.io.out("Lattice was already stopped.\n");
    return 0;
  }
  await ctx.client.down();
  return 0;
}

export async function runLogout(ctx: CommandContext): Promise<ExitCode> {
  await ctx.client.logout();
  return 0;
}

/** PATCH only the prefs given; none given is a usage error (exit 2). */
export async function runSet(ctx: CommandContext, patch: PrefsPatch): Promise<ExitCode> {
  if (Object.keys(patch).length === 0) {
    throw new UsageError("lattice set: no flags given (e.g. --hostname H, --ssh, --accept-routes=false)");
  }
  await ctx.client.patchPrefs(patch);
  return 0;
}
