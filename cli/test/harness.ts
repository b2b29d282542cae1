/**
 * Runs the CLI in-process against a FakeLocalApi with a virtual clock: `sleep` advances it
 * at once, so `up`'s polling and `ping`'s 1 s spacing cost no wall time. `spawnCli` runs the
 * built program (cli/bin/lattice.js, needs `tsc -b`) as a real process.
 */
import { spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { run } from "../src/cli.js";
import type { CliIo } from "../src/context.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Virtual ms slept in total. */
  slept: number;
}

export const NOW = Date.parse("2026-11-30T18:00:00Z");

export async function runCli(args: string[], opts: { env?: Record<string, string | undefined>; stdin?: PassThrough; stdout?: PassThrough } = {}): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  let clock = NOW;
  let slept = 0;
  const io: CliIo = {
    out: (s) => { stdout += s; },
    err: (s) => { stderr += s; },
    stdin: opts.stdin ?? new PassThrough(),
    stdout: opts.stdout ?? new PassThrough(),
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
      slept += ms;
      await Promise.resolve();
    },
    env: opts.env ?? {},
  };
  const code = await run(args, io);
  return { code, stdout, stderr, slept };
}

export const BIN = fileURLToPath(new URL("../bin/lattice.js", import.meta.url));

/** Spawns `node cli/bin/lattice.js args`; `input` is written to stdin then closed. */
export function spawnCli(args: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env["PATH"] ?? "", ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => { stdout += s; });
    child.stderr.setEncoding("utf8").on("data", (s: string) => { stderr += s; });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`lattice ${args.join(" ")} did not exit within ${opts.timeoutMs ?? 15_000} ms; stdout=${stdout} stderr=${stderr}`));
    }, opts.timeoutMs ?? 15_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
  });
}
