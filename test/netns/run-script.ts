// Runs one of the namespace scripts (netns.sh, interop.sh) for the vitest wrappers: streams its
// output to the test log and collects the "ok - NAME" / "not ok - NAME" / "1..N" lines.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file is test/netns/run-script.ts). */
export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Directory of the shell scripts. */
export const scriptDir: string = join(repoRoot, "test", "netns");

/** Default lattice-wg command: the built drop-in for `wireguard-go IFNAME`. */
export const defaultLatticeWgCommand = `node ${join(repoRoot, "daemon", "bin", "lattice-wg.js")}`;

/** Outcome of one script run. */
export interface ScriptResult {
  /** Exit status (null when killed by a signal). */
  readonly code: number | null;
  /** Names of the checks that printed "ok - NAME". */
  readonly passed: readonly string[];
  /** Names of the checks that printed "not ok - NAME". */
  readonly failed: readonly string[];
  /** N from the final "1..N" plan line, undefined if the script never printed it. */
  readonly plan: number | undefined;
  /** "Bail out!" reason, if any. */
  readonly bailOut: string | undefined;
}

/** Error for an environment that cannot run the system tests (not root, missing build). */
export class SystemTestEnvironmentError extends Error {
  /** Stable error code. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "SystemTestEnvironmentError";
    this.code = code;
  }
}

/**
 * The lattice-wg command the wrappers use: $LATTICE_WG_CMD, else the built daemon. Throws a
 * SystemTestEnvironmentError when the default is used and `tsc -b` has not produced it.
 */
export function latticeWgCommand(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env["LATTICE_WG_CMD"];
  if (fromEnv !== undefined && fromEnv.trim() !== "") return fromEnv;
  const entry = join(repoRoot, "daemon", "dist", "wg", "main.js");
  if (!existsSync(entry)) {
    throw new SystemTestEnvironmentError(
      "LATTICE_WG_NOT_BUILT",
      `lattice-wg is not built (${entry} missing): run \`pnpm build\` (tsc -b) first, ` +
        "or set LATTICE_WG_CMD to the command to test",
    );
  }
  return defaultLatticeWgCommand;
}

/** The reference implementation: $WG_REFERENCE_CMD, else Debian's `wireguard-go`. */
export function referenceWgCommand(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env["WG_REFERENCE_CMD"];
  return fromEnv !== undefined && fromEnv.trim() !== "" ? fromEnv : "wireguard-go";
}

/** Throws a clear error unless running as root (network namespaces and TUN need it). */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new SystemTestEnvironmentError(
      "NOT_ROOT",
      "the WireGuard namespace tests need root (ip netns, TUN devices, iptables): run them as root, as CI does",
    );
  }
}

/** Parses the check lines of a script's standard output. */
export function parseCheckLines(lines: readonly string[]): Omit<ScriptResult, "code"> {
  const passed: string[] = [];
  const failed: string[] = [];
  let plan: number | undefined;
  let bailOut: string | undefined;
  for (const line of lines) {
    const ok = /^ok - (.*)$/.exec(line);
    const notOk = /^not ok - (.*)$/.exec(line);
    const planMatch = /^1\.\.(\d+)$/.exec(line);
    if (ok?.[1] !== undefined) passed.push(ok[1]);
    else if (notOk?.[1] !== undefined) failed.push(notOk[1]);
    else if (planMatch?.[1] !== undefined) plan = Number(planMatch[1]);
    else if (line.startsWith("Bail out!")) bailOut = line.slice("Bail out!".length).trim();
  }
  return { passed, failed, plan, bailOut };
}

/**
 * Runs `bash test/netns/<script>` with extra environment variables, echoing its output, and
 * kills it (SIGTERM, so its EXIT trap cleans up) after timeoutMs.
 */
export function runScript(script: string, env: Record<string, string>, timeoutMs: number): Promise<ScriptResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("bash", [join(scriptDir, script)], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: string[] = [];
    let partial = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      process.stdout.write(chunk);
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts);
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => process.stderr.write(chunk));
    const timer = setTimeout(() => {
      process.stderr.write(`${script}: no result after ${timeoutMs} ms, sending SIGTERM\n`);
      child.kill("SIGTERM");
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (partial !== "") lines.push(partial);
      resolvePromise({ code, ...parseCheckLines(lines) });
    });
  });
}
