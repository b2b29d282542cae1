/**
 * A lab: network namespaces and the processes started in them, all removed afterwards.
 *
 * Names are unique per run: every namespace is `lte2e-<pid>-<4 hex>-<name>`, so parallel runs
 * (and other helpers' namespaces) never collide, and interfaces live only inside those
 * namespaces (veth pairs are created with both ends in lab namespaces; the host's interfaces
 * are never touched). Cleanup is `close()` (call it from `afterAll`); a process `exit` hook
 * does the same synchronously if the test process ends first (a timeout, an uncaught error,
 * SIGINT through vitest's teardown). A lab also deletes the namespaces of earlier runs whose
 * process is gone (a SIGKILLed test run cannot clean up after itself): only names with this
 * prefix and a dead pid.
 *
 * Processes are killed by pid: the ones spawned through {@link Lab.spawn}, then whatever still
 * runs in a lab namespace (`ip netns pids`), which can only have been started by this lab.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Prefix of every lab namespace (followed by `-<pid>-`). */
export const NS_PREFIX = "lte2e";

/** Result of a finished command. */
export interface ExecResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Error for a command that failed where success was required (message names command and output). */
export class LabCommandError extends Error {
  readonly code = "LAB_COMMAND_FAILED";
  constructor(
    readonly argv: readonly string[],
    readonly result: ExecResult,
  ) {
    super(`command failed (exit ${result.code}): ${argv.join(" ")}\nstdout: ${result.stdout.trim()}\nstderr: ${result.stderr.trim()}`);
    this.name = "LabCommandError";
  }
}

/** Options for {@link Lab.run}. */
export interface RunOptions {
  /** Kill the command after this many ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Standard input. */
  readonly input?: string;
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory. */
  readonly cwd?: string;
}

/** A long-running process started in a namespace. */
export interface LabProc {
  readonly name: string;
  readonly pid: number;
  readonly ns: string | null;
  readonly argv: readonly string[];
  /** File holding the process's stdout and stderr. */
  readonly logFile: string;
  /** Its output so far. */
  log(): string;
  /** Resolves when it has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** SIGTERM, then SIGKILL after graceMs (default 5000); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL; resolves once it has exited. */
  kill9(): Promise<void>;
  /** Waits until the log matches `re` (throws with the log tail after ms, or when it exits). */
  waitForLog(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

function execPromise(argv: readonly string[], o: RunOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: o.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...o.env }, cwd: o.cwd, killSignal: "SIGKILL" },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err !== null && code === null ? `\n[${err.message}]` : "") });
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
    else child.stdin?.end();
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function listNamespaces(): string[] {
  try {
    return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "")
      .filter((n) => n !== "");
  } catch {
    return [];
  }
}

function nsPids(ns: string): number[] {
  try {
    return execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map(Number);
  } catch {
    return [];
  }
}

function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Deletes namespaces of earlier lab runs whose process no longer exists (their names carry its pid). */
export function sweepStaleLabs(): string[] {
  const removed: string[] = [];
  const re = new RegExp(`^${NS_PREFIX}-(\\d+)-`);
  for (const ns of listNamespaces()) {
    const m = re.exec(ns);
    if (m === null || pidAlive(Number(m[1]))) continue;
    for (const pid of nsPids(ns)) killQuietly(pid, "SIGKILL");
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      removed.push(ns);
    } catch {
      /* raced with another sweeper */
    }
  }
  return removed;
}

/** Namespaces and processes of one test file; see the module comment. */
export class Lab {
  /** `lte2e-<pid>-<4 hex>`: the prefix of this lab's namespace names. */
  readonly id: string;
  /** Scratch directory (state dirs, sockets, logs); removed by close() unless E2E_KEEP_LOGS is set. */
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly procs: Array<{ child: ChildProcess; proc: LabProc }> = [];
  private closed = false;
  private readonly exitHook = (): void => this.closeSync();

  constructor() {
    if (process.getuid?.() !== 0) throw new Error("the e2e tests need root (network namespaces, TUN devices, iptables): run them as root, as CI does");
    sweepStaleLabs();
    this.id = `${NS_PREFIX}-${process.pid}-${randomBytes(2).toString("hex")}`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.id}-`));
    process.once("exit", this.exitHook);
  }

  /** The full name of lab namespace `name`. */
  ns(name: string): string {
    return `${this.id}-${name}`;
  }

  /** Creates namespace `name` (loopback up); returns its full name. */
  async addNs(name: string): Promise<string> {
    const full = this.ns(name);
    await this.must(["ip", "netns", "add", full]);
    this.namespaces.push(full);
    await this.must(["ip", "-n", full, "link", "set", "lo", "up"]);
    return full;
  }

  /** Namespaces this lab created (full names). */
  namespaceNames(): readonly string[] {
    return [...this.namespaces];
  }

  /** Runs argv, in namespace `ns` (full name) unless null; never throws for a non-zero exit. */
  run(ns: string | null, argv: readonly string[], o: RunOptions = {}): Promise<ExecResult> {
    return execPromise(ns === null ? argv : ["ip", "netns", "exec", ns, ...argv], o);
  }

  /** Like run() but throws LabCommandError unless the exit code is 0. */
  async must(argv: readonly string[], o: RunOptions & { ns?: string } = {}): Promise<ExecResult> {
    const full = o.ns === undefined ? argv : ["ip", "netns", "exec", o.ns, ...argv];
    const r = await execPromise(full, o);
    if (r.code !== 0) throw new LabCommandError(full, r);
    return r;
  }

  /** Runs a bash script (set -euo pipefail) in the host namespace; throws on failure. */
  sh(script: string, o: RunOptions = {}): Promise<ExecResult> {
    return this.must(["bash", "-c", `set -euo pipefail\n${script}`], o);
  }

  /** Starts a long-running process (in `ns` unless null), output to `<dir>/<name>.log`. */
  spawn(name: string, ns: string | null, argv: readonly string[], o: { env?: Readonly<Record<string, string>>; cwd?: string } = {}): LabProc {
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, "a");
    const full = ns === null ? [...argv] : ["ip", "netns", "exec", ns, ...argv];
    // `ip netns exec` execs the command, so the child's pid is the program's own pid.
    const child = spawn(full[0]!, full.slice(1), { stdio: ["ignore", fd, fd], env: { ...process.env, ...o.env }, cwd: o.cwd });
    closeSync(fd);
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${full.join(" ")}`);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    child.once("error", () => undefined);
    const running = (): boolean => child.exitCode === null && child.signalCode === null;
    const log = (): string => {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return "";
      }
    };
    const proc: LabProc = {
      name,
      pid,
      ns,
      argv: full,
      logFile,
      log,
      exited,
      running,
      async stop(graceMs = 5000) {
        if (!running()) return;
        killQuietly(pid, "SIGTERM");
        const t = setTimeout(() => killQuietly(pid, "SIGKILL"), graceMs);
        await exited;
        clearTimeout(t);
      },
      async kill9() {
        if (running()) killQuietly(pid, "SIGKILL");
        await exited;
      },
      async waitForLog(re, ms = 20_000) {
        const end = Date.now() + ms;
        for (;;) {
          const m = log().match(re);
          if (m !== null) return m;
          if (!running()) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before its log matched ${re}:\n${tail(log())}`);
          if (Date.now() > end) throw new Error(`${name}: log did not match ${re} within ${ms} ms:\n${tail(log())}`);
          await sleep(50);
        }
      },
    };
    this.procs.push({ child, proc });
    return proc;
  }

  /** Tails of every process log (for failure messages). */
  logs(lines = 30): string {
    return this.procs
      .map(({ child, proc }) => `--- ${proc.name} (pid ${proc.pid}${proc.running() ? "" : `, exited: ${child.exitCode ?? child.signalCode}`})\n${tail(proc.log(), lines)}`)
      .join("\n");
  }

  /** Kills every process of the lab, deletes its namespaces and scratch directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const { proc } of this.procs) if (proc.running()) killQuietly(proc.pid, "SIGTERM");
    const deadline = Date.now() + 3000;
    while (this.procs.some(({ proc }) => proc.running()) && Date.now() < deadline) await sleep(50);
    this.closeSync();
  }

  /** The synchronous part of close(), also run from the process exit hook. */
  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    process.removeListener("exit", this.exitHook);
    for (const { proc } of this.procs) if (proc.running()) killQuietly(proc.pid, "SIGKILL");
    for (const ns of this.namespaces) for (const pid of nsPids(ns)) killQuietly(pid, "SIGKILL");
    for (const ns of this.namespaces) {
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        /* already gone */
      }
    }
    if (process.env["E2E_KEEP_LOGS"]) process.stderr.write(`e2e: logs kept in ${this.dir}\n`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The last `lines` lines of a text. */
export function tail(text: string, lines = 30): string {
  return text.split("\n").slice(-lines).join("\n");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Thrown inside an until() probe to stop polling at once (e.g. the awaited process exited). */
export class GiveUp extends Error {
  readonly code = "E2E_GIVE_UP";
  constructor(message: string) {
    super(message);
    this.name = "GiveUp";
  }
}

/**
 * Polls `f` every `intervalMs` until it returns a value other than undefined/false/null, or
 * throws after `ms` naming `what` and the last error or value seen. A GiveUp thrown by `f`
 * ends the wait at once.
 */
export async function until<T>(what: string, f: () => T | undefined | null | false | Promise<T | undefined | null | false>, ms: number, intervalMs = 200): Promise<T> {
  const end = Date.now() + ms;
  let last = "";
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== null && v !== false) return v;
      last = `last value: ${String(v)}`;
    } catch (e) {
      if (e instanceof GiveUp) throw new Error(`gave up waiting for ${what}: ${e.message}`);
      last = `last error: ${(e as Error).message}`;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (${last})`);
    await sleep(intervalMs);
  }
}
