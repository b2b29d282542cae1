/** The `lattice` process: real stdio, clock and timers around cli.ts's run(). */
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "./cli.js";
import type { CliIo } from "./context.js";

let stdinUsed = false;
const io: CliIo = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  get stdin() {
    stdinUsed = true;
    return process.stdin;
  },
  stdout: process.stdout,
  now: () => Date.now(),
  sleep: (ms) => sleep(ms),
  env: process.env,
};

run(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
    // a piped stdin (nc) would keep the process alive after the connection ended
    if (stdinUsed) process.stdin.destroy();
  },
  (e: unknown) => {
    process.stderr.write(`lattice: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
