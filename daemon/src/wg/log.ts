/**
 * A tiny leveled logger for lattice-wg, writing `LEVEL: (ifname) message` lines to a
 * stream (stderr in foreground mode). Levels follow wireguard-go's LOG_LEVEL values.
 */

/** Log levels, most to least verbose. */
export type LogLevel = "debug" | "info" | "error" | "silent";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, error: 2, silent: 3 };

/** A leveled logger. */
export interface Logger {
  /** The active level. */
  readonly level: LogLevel;
  /** Verbose diagnostics. */
  debug(msg: string): void;
  /** Normal operation events. */
  info(msg: string): void;
  /** Failures. */
  error(msg: string): void;
}

/**
 * The level for a LOG_LEVEL value: "verbose"/"debug", "info", "error", "silent";
 * unset or unknown gives "error" (wireguard-go's default).
 */
export function parseLogLevel(value: string | undefined): LogLevel {
  switch (value) {
    case "verbose":
    case "debug":
      return "debug";
    case "info":
      return "info";
    case "silent":
      return "silent";
    default:
      return "error";
  }
}

/** A logger writing to `out` with the given prefix, e.g. "(wg0) ". */
export function createLogger(level: LogLevel, prefix: string, out: { write(s: string): unknown }, clock: () => Date = () => new Date()): Logger {
  const emit = (l: LogLevel, tag: string, msg: string): void => {
    if (RANK[l] < RANK[level]) return;
    out.write(`${tag}: ${clock().toISOString()} ${prefix}${msg}\n`);
  };
  return {
    level,
    debug: (m) => emit("debug", "DEBUG", m),
    info: (m) => emit("info", "INFO", m),
    error: (m) => emit("error", "ERROR", m),
  };
}
