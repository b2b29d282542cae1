/**
 * Test harness: runs the real `lattice-control` (coordination/dist/main.js) as a child
 * process with a temporary database and admin socket on a free port, drives it with the
 * CLI, the REST API and the node protocol client, and can start a throwaway PostgreSQL.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, chmodSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import { ControlClient, noiseKeyPair, type NoiseKeyPair } from "@lattice/control-client";
import { formatKey, type MapRequest, type RegisterRequest } from "@lattice/types";

const here = fileURLToPath(new URL(".", import.meta.url));
/** The built server entry. */
export const MAIN = resolve(here, "../dist/main.js");

/** Throws a clear message when the server has not been built. */
export function requireBuilt(): void {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npx tsc -b coordination\` first`);
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

/** Result of a CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running server process. */
export interface ServerProc {
  url: string;
  port: number;
  socket: string;
  dir: string;
  db: string;
  proc: ChildProcess;
  stdout: () => string;
  /** Runs `lattice-control --socket <socket> ...args`. */
  cli(args: string[], input?: string): Promise<CliResult>;
  /** Calls the REST API with an API key. */
  api(method: string, path: string, body?: unknown, key?: string, raw?: string | Buffer): Promise<{ status: number; json: any }>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill9(): Promise<void>;
}

/**
 * Environment every spawned lattice-control gets: the embedded relay's STUN server on any
 * free UDP port (the default 3478 would clash between servers of parallel tests).
 * A test's own `--stun-port` flag or env still wins.
 */
export const TEST_ENV: Record<string, string> = { LATTICE_CONTROL_STUN_PORT: "0" };

/** Options for {@link startServer}. */
export interface StartOptions {
  db?: string;
  dir?: string;
  port?: number;
  env?: Record<string, string>;
  args?: string[];
  /** The server speaks HTTPS (pass --tls-self-signed or --tls-cert/--tls-key in args). */
  https?: boolean;
}

/** Starts `lattice-control serve` and waits until it prints its admin socket line. */
export async function startServer(o: StartOptions = {}): Promise<ServerProc> {
  requireBuilt();
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), "lattice-control-test-"));
  const port = o.port ?? (await freePort());
  const socket = join(dir, "control.sock");
  const db = o.db ?? join(dir, "lattice.db");
  const url = `${o.https ? "https" : "http"}://127.0.0.1:${port}`;
  const proc = spawn(
    process.execPath,
    [MAIN, "serve", "--listen", `127.0.0.1:${port}`, "--server-url", url, "--db", db, "--socket", socket, ...(o.args ?? [])],
    { env: { ...process.env, LATTICE_CONTROL_LOG_LEVEL: "warn", ...TEST_ENV, ...o.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`server did not start in 20 s\nstdout: ${out}\nstderr: ${err}`)), 20_000);
    const check = () => {
      if (out.includes("admin socket:")) {
        clearTimeout(t);
        proc.stdout!.off("data", check);
        res();
      }
    };
    proc.stdout!.on("data", check);
    proc.once("exit", (code) => {
      clearTimeout(t);
      rej(new Error(`server exited with ${code}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  const cli = (args: string[], input?: string) => runCli(["--socket", socket, ...args], input);
  return {
    url,
    port,
    socket,
    dir,
    db,
    proc,
    stdout: () => out + err,
    cli,
    async api(method, path, body, key, raw) {
      const headers: Record<string, string> = {};
      if (key) headers.authorization = `Bearer ${key}`;
      if (body !== undefined || raw !== undefined) headers["content-type"] = "application/json";
      const res = await fetch(`${url}/api/v1${path}`, { method, headers, body: raw ?? (body !== undefined ? JSON.stringify(body) : undefined) });
      const text = await res.text();
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        json = { text };
      }
      return { status: res.status, json };
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/** Runs the CLI (no server needed for `policy compile`). */
export function runCli(args: string[], input?: string): Promise<CliResult> {
  return new Promise((res) => {
    const child = execFile(process.execPath, [MAIN, ...args], { timeout: 20_000, env: { ...process.env, ...TEST_ENV } }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as any).code === "number" ? (error as any).code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

/** A simulated node: machine key, node key, and a control connection. */
export class TestNode {
  readonly machine: NoiseKeyPair = noiseKeyPair(new Uint8Array(randomBytes(32)));
  nodeKey = formatKey("node", new Uint8Array(randomBytes(32)));
  readonly discoKey = formatKey("disco", new Uint8Array(randomBytes(32)));
  client!: ControlClient;

  constructor(
    readonly serverUrl: string,
    readonly hostname: string,
  ) {}

  /** Dials the server (Noise over the HTTP upgrade). */
  async connect(): Promise<this> {
    this.client = await ControlClient.connect({ serverUrl: this.serverUrl, machineKey: this.machine });
    return this;
  }

  /** Sends a RegisterRequest with defaults filled in. */
  register(extra: Partial<RegisterRequest> = {}) {
    return this.client.register({ Version: 100, NodeKey: this.nodeKey, Hostinfo: { Hostname: this.hostname, OS: "linux" }, ...extra } as RegisterRequest);
  }

  /** Opens a map stream. */
  map(extra: Partial<MapRequest> = {}) {
    return this.client.map({ Version: 100, NodeKey: this.nodeKey, DiscoKey: this.discoKey, Stream: true, Hostinfo: { Hostname: this.hostname, OS: "linux" }, Endpoints: ["192.0.2.1:41641"], ...extra } as MapRequest);
  }

  /** Closes the connection. */
  close(): void {
    this.client?.close();
  }
}

/** A throwaway PostgreSQL cluster run as the `postgres` user in a temp dir. */
export interface PgCluster {
  /** A fresh database URL per call. */
  createDb(name: string): Promise<string>;
  stop(): void;
}

/** Finds the PostgreSQL binaries (apt layout), or null. */
export function pgBinDir(): string | null {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) return null;
  const versions = execFileSync("ls", [base]).toString().split(/\s+/).filter(Boolean).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(base, v, "bin", "initdb"))) return join(base, v, "bin");
  return null;
}

/** initdb + pg_ctl start on a free port (as the postgres user when we are root). */
export async function startPostgres(): Promise<PgCluster> {
  const bin = pgBinDir();
  if (!bin) throw new Error("PostgreSQL binaries not found under /usr/lib/postgresql (apt install postgresql)");
  const dir = mkdtempSync(join(tmpdir(), "lattice-pg-"));
  chmodSync(dir, 0o777);
  const data = join(dir, "data");
  const port = await freePort();
  const asPg = (cmd: string) => {
    if (process.getuid?.() === 0) execFileSync("su", ["postgres", "-s", "/bin/sh", "-c", cmd], { stdio: "pipe" });
    else execFileSync("/bin/sh", ["-c", cmd], { stdio: "pipe" });
  };
  asPg(`${bin}/initdb -D ${data} -A trust -U postgres --no-sync >/dev/null`);
  asPg(`${bin}/pg_ctl -D ${data} -l ${dir}/log -w -o "-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" start >/dev/null`);
  return {
    async createDb(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      asPg(`${bin}/createdb -h ${dir} -p ${port} -U postgres ${name}`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop() {
      try {
        asPg(`${bin}/pg_ctl -D ${data} -m immediate -w stop >/dev/null`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Runs one UPDATE against the server's database from a child process (the test runner
 * resolves packages with the "import" condition, which the pg driver cannot load under).
 */
export function dbUpdate(db: string, table: string, set: Record<string, unknown>, where: [string, unknown]): Promise<number> {
  return new Promise((res, rej) => {
    execFile(process.execPath, [resolve(here, "db-update.mjs"), db, JSON.stringify({ table, set, where })], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`db-update failed: ${stderr || err.message}`));
      else res(Number(stdout.trim()));
    });
  });
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(fn: () => Promise<T> | T, ms = 5000, step = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, step));
  }
}

/**
 * Logs `user` in through the server's real web login form (GET /login for the CSRF token
 * and cookie, then POST), expecting the 303 redirect to `next`; returns the session cookie
 * (`name=value`) to send with later requests.
 */
export async function webLogin(serverUrl: string, user: string, password: string, next: string): Promise<string> {
  const form = await fetch(`${serverUrl}/login?next=${encodeURIComponent(next)}`);
  const csrfCookie = form.headers.get("set-cookie")!.split(";")[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())![1]!;
  const r = await fetch(`${serverUrl}/login`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: csrfCookie },
    body: new URLSearchParams({ csrf, next, username: user, password }).toString(),
  });
  expect(r.status).toBe(303);
  return r.headers.get("set-cookie")!.split(";")[0]!;
}
