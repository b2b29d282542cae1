/**
 * Helpers for the startup tests: run `lattice-control serve` expecting it to fail, with a
 * kill after a limit so that a server that hangs (or keeps running half-started) fails
 * the test instead of stalling it.
 */
import { spawn } from "node:child_process";
import net from "node:net";
import { MAIN, requireBuilt, TEST_ENV } from "./harness.js";

/** How a `serve` that was expected to stop ended. */
export interface ServeExit {
  /** Exit code; null when it had to be killed. */
  code: number | null;
  /** True when it still ran after the limit (hung, or kept serving half-started). */
  killed: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `lattice-control serve ...args` and waits for it to exit (killed after `limitMs`). */
export function serveExpectingExit(args: string[], o: { env?: Record<string, string>; limitMs?: number; wrap?: string[] } = {}): Promise<ServeExit> {
  requireBuilt();
  const argv = [...(o.wrap ?? []), process.execPath, MAIN, "serve", ...args];
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, LATTICE_CONTROL_LOG_LEVEL: "warn", ...TEST_ENV, ...o.env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => {
    let killed = false;
    const t = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, o.limitMs ?? 15_000);
    child.once("close", (code) => {
      clearTimeout(t);
      resolve({ code: killed ? null : code, killed, stdout, stderr });
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function tcpListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

/**
 * Asserts the startup failure shape: ended on its own with a non-zero code, and stderr is
 * exactly one line `error: <setting> <value>: ...` matching `reason`.
 */
export function failureLine(r: ServeExit): string {
  if (r.killed) throw new Error(`serve was still running after the limit (hung or half-started)\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  if (r.code === 0) throw new Error(`serve exited 0\nstderr: ${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  if (lines.length !== 1) throw new Error(`want one error line on stderr, got ${lines.length}:\n${r.stderr}`);
  return lines[0]!;
}
