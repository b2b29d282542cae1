/**
 * lattice-wg: a drop-in for `wireguard-go [-f|--foreground] IFNAME`. Parses the command
 * line, daemonizes (re-spawning itself in the foreground, detached, and waiting for
 * readiness over a pipe) unless told not to, and runs the interface.
 *
 * Like wireguard-go: TUN IFNAME (IFF_TUN|IFF_NO_PI, MTU 1420, left down), UAPI socket
 * /var/run/wireguard/IFNAME.sock (dir 0755, socket 0700), LOG_LEVEL and
 * WG_PROCESS_FOREGROUND, exit on SIGTERM/SIGINT, on `ip link del IFNAME` and on removal
 * of the socket file; a daemonized process keeps stdout/stderr only when LOG_LEVEL is set.
 * Differences: the daemon child reports readiness (or its setup error, exit 1) to the
 * parent, so failures are visible to the caller; bad flags exit 2 with a message; the
 * UDP socket (one dual-stack socket) is bound at start on a random port, not when the
 * link goes up, and stays bound while the link is down (WG_TUN_FD / WG_UAPI_FD
 * inheritance is not supported). The device follows the link's up/down state (down:
 * sessions dropped, nothing sent, configuration kept), polled every second through the
 * TUN fd, so also in another namespace, where wireguard-go's netlink watch cannot see
 * it; the interface MTU is polled with it. A packet the kernel refuses (TUN write EIO
 * while down, UDP send ENETUNREACH, ...) is dropped, counted and logged once: only the
 * interface's deletion ends the daemon.
 */
import { parseArgs } from "./args.js";
import { readinessFromEnv, spawnDaemon } from "./daemonize.js";
import { createWgDevice } from "./device.js";
import { runForeground } from "./foreground.js";
import { createLogger, parseLogLevel } from "./log.js";

/** Runs the program; resolves with the process exit code. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const cmd = parseArgs(argv, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }, env);
  if (cmd.kind === "exit") return cmd.code;
  const level = parseLogLevel(env.LOG_LEVEL);
  const log = createLogger(level, `(${cmd.ifname}) `, process.stderr);
  if (!cmd.foreground) {
    const r = await spawnDaemon({
      execPath: process.execPath,
      execArgv: process.execArgv,
      script: process.argv[1]!,
      args: ["--foreground", cmd.ifname],
      env: { ...env, WG_PROCESS_FOREGROUND: "1" },
      keepOutput: env.LOG_LEVEL !== undefined && level !== "silent",
    });
    if (r.ok) return 0;
    process.stderr.write(`lattice-wg: ${r.message}\n`);
    return 1;
  }
  return runForeground({ ifname: cmd.ifname, log, notify: readinessFromEnv(env), createDevice: createWgDevice });
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
    // Handles (sockets, timers) are closed on shutdown; exit explicitly in case one lingers.
    setImmediate(() => process.exit(code));
  },
  (e: unknown) => {
    process.stderr.write(`lattice-wg: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
