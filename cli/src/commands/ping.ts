/**
 * `lattice ping [-c N] [--until-direct] [--tsmp|--icmp] [--timeout D] host` (Tailscale's
 * ping.go): pings at the Lattice layer and says which path each pong took:
 * `pong from NAME (IP) via DERP(code) in 23ms` / `via 1.2.3.4:41641 in 1ms` (latency rounded
 * to 1 ms, Go duration text). One ping a second; -c 10 by default (0 = no limit).
 * Disco pings (default) with --until-direct (default on) stop at the first direct pong; -c
 * exhausted without one: `direct connection not established`, exit 1. `--until-direct=false`
 * sends all N. --tsmp/--icmp stop after the first pong. A ping unanswered within --timeout
 * (5 s): `ping "IP" timed out` and the next one; none answered at all: `no reply`, exit 1.
 */
import type { CommandContext, ExitCode } from "../context.js";
import { CliError, NotRunningStateError } from "../errors.js";
import { formatGoDurationMs, notRunningDescription } from "../format.js";
import { LocalApiError } from "../errors.js";
import type { PingType } from "../localapi.js";
import { resolveNode } from "../resolve.js";
import type { PingResult } from "../types.js";

export interface PingOptions {
  count: number;
  untilDirect: boolean;
  type: PingType;
  timeoutMs: number;
}

export const PING_INTERVAL_MS = 1000;

export async function runPing(ctx: CommandContext, opts: PingOptions, host: string): Promise<ExitCode> {
  const { io, client } = ctx;
  const st = await client.status();
  const description = notRunningDescription(st);
  if (description !== null) throw new NotRunningStateError(description);
  const target = resolveNode(st, host, { anyIp: true });
  if (target.self) {
    io.out(`${target.ip} is local Lattice IP\n`);
    return 0;
  }
  let anyPong = false;
  for (let n = 1; ; n++) {
    let pr: PingResult | null;
    try {
      pr = await client.ping(target.ip, opts.type, opts.timeoutMs);
    } catch (e) {
      if (!isPingTimeout(e)) throw e;
      pr = null;
    }
    if (pr === null) {
      io.out(`ping ${JSON.stringify(target.ip)} timed out\n`);
      if (n === opts.count) {
        if (!anyPong) throw new CliError("ERR_NO_REPLY", "no reply");
        return 0;
      }
      continue;
    }
    if (pr.Err) {
      if (pr.IsLocalIP) {
        io.out(pr.Err + "\n");
        return 0;
      }
      throw new CliError("ERR_PING", pr.Err);
    }
    anyPong = true;
    const via = pr.DERPRegionID !== 0 && !pr.Endpoint ? `DERP(${pr.DERPRegionCode})` : pr.Endpoint || opts.type;
    io.out(`pong from ${pr.NodeName} (${pr.NodeIP}) via ${via} in ${formatGoDurationMs(Math.round(pr.LatencySeconds * 1000))}\n`);
    if (opts.type !== "disco") return 0;
    if (pr.Endpoint && opts.untilDirect) return 0;
    if (n === opts.count) {
      if (opts.untilDirect) throw new CliError("ERR_NOT_DIRECT", "direct connection not established");
      return 0;
    }
    await io.sleep(PING_INTERVAL_MS);
  }
}

/** The daemon's `timeout` answer, or the client giving up on the request. */
function isPingTimeout(e: unknown): boolean {
  return (e instanceof LocalApiError && e.apiCode === "timeout") || (e instanceof CliError && e.code === "ERR_LOCALAPI_TIMEOUT");
}
