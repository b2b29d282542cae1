/**
 * Runs the real `lattice-derp` (derp/dist/main.js, built by `tsc -b`) as a child process
 * and waits for its "listening" log line, which carries the bound ports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const MAIN = resolve(here, "../dist/main.js");
export const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

export interface RelayProc {
  readonly proc: ChildProcess;
  readonly derpPort: number;
  readonly httpPort: number | null;
  readonly stunPort: number | null;
  readonly url: string;
  log(): string;
  stats(): Promise<any>;
  stop(): Promise<void>;
}

/** A TCP port that was free a moment ago (for relays that must name each other up front). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/** Runs lattice-derp with `args` (defaults: loopback, any port, no plain-HTTP port, STUN on any port). */
export async function startRelayProc(args: string[] = [], o: { https?: boolean; port?: number } = {}): Promise<RelayProc> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`pnpm exec tsc -b\` first`);
  const proc = spawn(process.execPath, [MAIN, "--listen", `127.0.0.1:${o.port ?? 0}`, "--http-port", "-1", "--stun-port", "0", "--log-level", "debug", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const ready = await new Promise<any>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`lattice-derp did not start in 20 s:\n${out}`)), 20_000);
    const check = (): void => {
      for (const line of out.split("\n")) {
        if (!line.includes("lattice-derp listening")) continue;
        clearTimeout(t);
        proc.stderr!.off("data", check);
        res(JSON.parse(line));
        return;
      }
    };
    proc.stderr!.on("data", check);
    proc.once("exit", (code) => {
      clearTimeout(t);
      rej(new Error(`lattice-derp exited with ${code}:\n${out}`));
    });
  });
  const url = `${o.https ? "https" : "http"}://127.0.0.1:${ready.derpPort}`;
  return {
    proc,
    derpPort: ready.derpPort,
    httpPort: ready.httpPort,
    stunPort: ready.stunPort,
    url,
    log: () => out,
    async stats() {
      const r = await fetch(`http://127.0.0.1:${ready.derpPort}/debug/stats`);
      return r.json();
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** Polls `f` until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(what: string, f: () => T | Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
