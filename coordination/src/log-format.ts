/**
 * Log output: pino's JSON lines, or — when stderr is a terminal — one readable line per
 * entry (`12:00:01 INFO  registration accepted  registration.hostname=web-1 …`), as
 * operators reading a terminal expect. Machines (journald, files, pipes) get JSON.
 */

const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

function flatten(prefix: string, v: unknown, out: string[]): void {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(prefix ? `${prefix}.${k}` : k, x, out);
  } else if (v !== undefined) out.push(`${prefix}=${typeof v === "string" ? (/[\s"=]/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`);
}

/** One pino JSON line as a readable line (the input unchanged when it is not JSON). */
export function prettyLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, msg, pid: _pid, hostname: _host, err, ...rest } = o;
  const fields: string[] = [];
  flatten("", rest, fields);
  const t = typeof time === "number" ? new Date(time).toISOString().slice(11, 19) : "";
  const stack = err && typeof err === "object" && "stack" in err ? `\n${String((err as { stack: unknown }).stack)}` : "";
  return `${t} ${(LEVELS[Number(level)] ?? String(level)).padEnd(5)} ${String(msg ?? "")}${fields.length ? `  ${fields.join(" ")}` : ""}${stack}\n`;
}

/** A pino destination writing pretty lines to `out` (e.g. process.stderr). */
export function prettyDestination(out: { write(s: string): unknown }): { write(s: string): void } {
  return { write: (s: string) => void out.write(prettyLine(s)) };
}
