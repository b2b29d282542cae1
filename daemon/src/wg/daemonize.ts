/**
 * Daemonization without fork(): the parent re-spawns this program detached in
 * foreground mode with a readiness pipe on fd 3, waits for the child to report
 * `READY` (TUN and UAPI socket up) or `ERROR <message>`, and exits accordingly.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";

/** Env var telling the child which fd is the readiness pipe. */
export const NOTIFY_FD_ENV = "LATTICE_WG_NOTIFY_FD";

/** Outcome of {@link spawnDaemon}. */
export type DaemonResult = { readonly ok: true; readonly pid: number } | { readonly ok: false; readonly message: string };

/** Options of {@link spawnDaemon}. */
export interface SpawnDaemonOptions {
  /** Node executable and its flags. */
  readonly execPath: string;
  readonly execArgv: readonly string[];
  /** The script to run (this program's bin). */
  readonly script: string;
  /** Arguments for the child (must include the foreground flag). */
  readonly args: readonly string[];
  /** Environment of the child. */
  readonly env: NodeJS.ProcessEnv;
  /** Keep the child's stdout/stderr on ours (wireguard-go does when LOG_LEVEL is set). */
  readonly keepOutput: boolean;
  /** Give up after this long (ms). */
  readonly timeoutMs?: number;
}

/** Spawns the detached child and resolves once it is ready or has failed. */
export function spawnDaemon(o: SpawnDaemonOptions): Promise<DaemonResult> {
  return new Promise((resolve) => {
    const out = o.keepOutput ? "inherit" : "ignore";
    const child = spawn(o.execPath, [...o.execArgv, o.script, ...o.args], {
      detached: true,
      stdio: ["ignore", out, out, "pipe"],
      env: { ...o.env, [NOTIFY_FD_ENV]: "3" },
    });
    let text = "";
    let settled = false;
    const finish = (r: DaemonResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      pipe.destroy();
      child.unref();
      resolve(r);
    };
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      finish({ ok: false, message: "daemon did not become ready in time" });
    }, o.timeoutMs ?? 30_000);
    const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    pipe.on("data", (d: Buffer) => {
      text += d.toString();
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      const line = text.slice(0, nl);
      if (line === "READY") finish({ ok: true, pid: child.pid ?? 0 });
      else finish({ ok: false, message: line.replace(/^ERROR /, "") });
    });
    pipe.on("error", () => {});
    child.on("error", (e) => finish({ ok: false, message: `failed to daemonize: ${e.message}` }));
    child.on("exit", (code, sig) => finish({ ok: false, message: `daemon exited during setup (${sig ?? `code ${code}`})` }));
  });
}

/** In the child: the readiness reporter (no-op when not started by {@link spawnDaemon}). */
export interface ReadinessNotifier {
  /** Reports success. */
  ready(): void;
  /** Reports a setup failure. */
  failed(message: string): void;
}

/** The notifier for this process, from the environment. */
export function readinessFromEnv(env: NodeJS.ProcessEnv): ReadinessNotifier {
  const fdText = env[NOTIFY_FD_ENV];
  const fd = fdText === undefined ? NaN : Number(fdText);
  let done = !Number.isInteger(fd);
  const send = (line: string): void => {
    if (done) return;
    done = true;
    try {
      fs.writeSync(fd, `${line.replace(/\n/g, " ")}\n`);
      fs.closeSync(fd);
    } catch {
      /* parent gone */
    }
  };
  return { ready: () => send("READY"), failed: (m) => send(`ERROR ${m}`) };
}
