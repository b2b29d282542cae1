/**
 * `lattice nc host port`: a TCP connection to a tailnet node, stdin → connection →
 * stdout (Tailscale's nc.go dials through the daemon; Lattice's data path is the kernel TUN,
 * so the CLI connects to the node's tailnet IP directly). The host is resolved from status
 * (name or IP). Ends when the remote side closes (exit 0); stdin EOF half-closes the
 * connection. Connecting is bounded by NC_CONNECT_TIMEOUT_MS.
 */
import { connect } from "node:net";
import type { CommandContext, ExitCode } from "../context.js";
import { CliError, NotRunningStateError } from "../errors.js";
import { parseIntFlag } from "../flags.js";
import { notRunningDescription } from "../format.js";
import { resolveNode } from "../resolve.js";

export const NC_CONNECT_TIMEOUT_MS = 30_000;

export async function runNc(ctx: CommandContext, host: string, portText: string): Promise<ExitCode> {
  const port = parseIntFlag("port", portText, 1, 65535);
  const st = await ctx.client.status();
  const description = notRunningDescription(st);
  if (description !== null) throw new NotRunningStateError(description);
  const { ip } = resolveNode(st, host, { anyIp: true });
  const { stdin, stdout } = ctx.io;
  return new Promise<ExitCode>((resolve, reject) => {
    const sock = connect({ host: ip, port });
    let connected = false;
    const timer = setTimeout(() => sock.destroy(new CliError("ERR_NC_TIMEOUT", `dial ${ip}:${port}: timed out after ${NC_CONNECT_TIMEOUT_MS / 1000}s`)), NC_CONNECT_TIMEOUT_MS);
    sock.once("connect", () => {
      connected = true;
      clearTimeout(timer);
      stdin.pipe(sock);
    });
    sock.on("data", (chunk: Buffer) => {
      if (!stdout.write(chunk)) {
        sock.pause();
        stdout.once("drain", () => sock.resume());
      }
    });
    sock.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      stdin.unpipe(sock);
      reject(e instanceof CliError ? e : new CliError("ERR_NC", connected ? `${ip}:${port}: ${e.message}` : `dial ${ip}:${port}: ${e.code ?? e.message}`));
    });
    sock.once("close", (hadError) => {
      clearTimeout(timer);
      stdin.unpipe(sock);
      stdin.pause();
      if (!hadError) resolve(0);
    });
  });
}
