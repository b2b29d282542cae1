/**
 * latticed's logs: pino JSON lines on stderr; `--verbose N`: 0 info, 1 debug, 2 trace.
 * {@link wgLogger} adapts it to lattice-wg's string logger, which the shared edge uses.
 */
import { pino, type Logger } from "pino";
import type { Logger as WgLogger } from "../wg/log.js";

/** The pino level for a --verbose value. */
export function levelFor(verbose: number): "info" | "debug" | "trace" {
  return verbose >= 2 ? "trace" : verbose === 1 ? "debug" : "info";
}

/** A pino logger writing JSON to `dest` (default stderr, synchronously: nothing lost on exit). */
export function createLogger(verbose: number, dest: NodeJS.WritableStream | number = 2): Logger {
  const stream = typeof dest === "number" ? pino.destination({ dest, sync: true }) : dest;
  return pino({ level: levelFor(verbose), base: { prog: "latticed", pid: process.pid } }, stream);
}

/** lattice-wg's Logger interface over pino (for the shared WgEdge). */
export function wgLogger(log: Logger): WgLogger {
  const level = log.isLevelEnabled("debug") ? "debug" : "info";
  return {
    level,
    debug: (m) => log.debug({ component: "wg" }, m),
    info: (m) => log.info({ component: "wg" }, m),
    error: (m) => log.error({ component: "wg" }, m),
  };
}
