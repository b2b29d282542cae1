/**
 * `lattice ssh [user@]host [args...]` (Tailscale's `tailscale ssh`): runs the system
 * `ssh` against the node's tailnet IP with a known_hosts built from the host keys the node
 * publishes in the netmap (status PeerStatus `sshHostKeys`, from its Hostinfo), so the
 * first connection is already verified: `-o UserKnownHostsFile=<temp file>
 * -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o HostKeyAlias=<ip>`.
 * `args` go to ssh after the destination (a remote command). The known_hosts file lives
 * in a 0700 temp directory, is 0600, and is removed when ssh exits. Exit code: ssh's
 * (255 for its own failures), 128+n when it died of signal n.
 *
 * The ssh program is `ssh` on PATH, or $LATTICE_SSH (tests, wrappers).
 * Choice (Tailscale falls back to plain ssh): a node publishing no host keys is an error,
 * so a `lattice ssh` never connects unverified.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { constants as osConstants, tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandContext, ExitCode } from "../context.js";
import { CliError, NotRunningStateError, UsageError } from "../errors.js";
import { notRunningDescription } from "../format.js";
import { resolveNode } from "../resolve.js";

/** A host key line as published: "<type> <base64>" (a comment is dropped). */
const KEY_RE = /^(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa|rsa-sha2-(?:256|512)) ([A-Za-z0-9+/]+={0,2})(?: .*)?$/;

/** The known_hosts text for `alias` from published keys; throws when none is usable. */
export function knownHostsFor(alias: string, keys: readonly string[]): string {
  const lines = keys.map((k) => KEY_RE.exec(k.trim())).filter((m): m is RegExpExecArray => m !== null).map((m) => `${alias} ${m[1]} ${m[2]}`);
  if (lines.length === 0) throw new CliError("ERR_NO_HOST_KEYS", `${alias} publishes no usable SSH host keys (is "lattice set --ssh" on there?)`);
  return lines.join("\n") + "\n";
}

/** Splits "[user@]host" at the last "@". */
export function splitTarget(target: string): { user: string | null; host: string } {
  const at = target.lastIndexOf("@");
  if (at < 0) return { user: null, host: target };
  const user = target.slice(0, at);
  const host = target.slice(at + 1);
  if (user === "" || host === "") throw new UsageError(`lattice ssh: bad destination ${JSON.stringify(target)} (want [user@]host)`);
  return { user, host };
}

/** Runs `lattice ssh`; `argv` is everything after "ssh". */
export async function runSsh(ctx: CommandContext, argv: readonly string[]): Promise<ExitCode> {
  const [target, ...rest] = argv;
  if (target === undefined || target === "" || target.startsWith("-")) throw new UsageError("usage: lattice ssh [user@]host [args...]");
  const { user, host } = splitTarget(target);
  const st = await ctx.client.status();
  const description = notRunningDescription(st);
  if (description !== null) throw new NotRunningStateError(description);
  const { node, ip } = resolveNode(st, host);
  const known = knownHostsFor(ip, node?.sshHostKeys ?? []);
  const dir = mkdtempSync(join(tmpdir(), "lattice-ssh-"));
  try {
    const file = join(dir, "known_hosts");
    writeFileSync(file, known, { mode: 0o600 });
    const args = [
      "-o", `UserKnownHostsFile=${file}`,
      "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "StrictHostKeyChecking=yes",
      "-o", `HostKeyAlias=${ip}`,
      ...(user !== null ? ["-l", user] : []),
      "--",
      ip,
      ...rest,
    ];
    const program = ctx.io.env["LATTICE_SSH"] || "ssh";
    return await new Promise<ExitCode>((resolve, reject) => {
      const child = spawn(program, args, { stdio: "inherit", env: ctx.io.env as NodeJS.ProcessEnv });
      // ssh handles ^C itself (the terminal sends it to the whole foreground group).
      const ignore = (): void => undefined;
      process.on("SIGINT", ignore);
      child.once("error", (e: NodeJS.ErrnoException) => {
        process.off("SIGINT", ignore);
        reject(new CliError("ERR_SSH_EXEC", `running ${program}: ${e.code === "ENOENT" ? "not found (install OpenSSH's client)" : e.message}`));
      });
      child.once("exit", (code, signal) => {
        process.off("SIGINT", ignore);
        if (code !== null) resolve(code);
        else resolve(128 + (signal ? signalNumber(signal) : 0));
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number | undefined>)[sig] ?? 0;
}
