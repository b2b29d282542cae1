/**
 * Flag values the way Tailscale's CLI (Go's flag package) takes them: Go durations
 * (`500ms`, `30s`, `1m30s`), `--bool=false`, comma-separated tags. Every parser throws
 * FlagValueError naming the flag and the value (exit 2).
 */
import { readFileSync } from "node:fs";
import { FlagValueError, UsageError } from "./errors.js";

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a Go time.Duration string (`"0"`, `"500ms"`, `"1.5s"`, `"1h2m"`; units ns us µs ms
 * s m h) into milliseconds; negative durations are refused. Throws FlagValueError.
 */
export function parseDurationFlag(flag: string, value: string): number {
  if (value === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let pos = 0;
  let total = 0;
  while (pos < value.length) {
    re.lastIndex = pos;
    const m = re.exec(value);
    if (!m) break;
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (value === "" || pos !== value.length) throw new FlagValueError(flag, value, "not a duration (e.g. 500ms, 30s, 1m)");
  return total;
}

/** Parses a base-10 integer in [min, max]. Throws FlagValueError. */
export function parseIntFlag(flag: string, value: string, min: number, max: number): number {
  if (!/^[+-]?\d+$/.test(value)) throw new FlagValueError(flag, value, "not an integer");
  const n = Number(value);
  if (n < min || n > max) throw new FlagValueError(flag, value, `must be between ${min} and ${max}`);
  return n;
}

/** `tag:a,tag:b` → ["tag:a","tag:b"]; "" → [] (clears). Each must be `tag:` + a name. */
export function parseTagsFlag(flag: string, value: string): string[] {
  if (value.trim() === "") return [];
  const tags = value.split(",").map((t) => t.trim());
  for (const t of tags) {
    if (!/^tag:[A-Za-z0-9][A-Za-z0-9_-]*$/.test(t)) {
      throw new FlagValueError(flag, value, `tags must start with "tag:" followed by letters, digits, "-" or "_", got ${JSON.stringify(t)}`);
    }
  }
  return tags;
}

/** An http(s) URL without credentials, returned as given (trailing "/" dropped). */
export function parseUrlFlag(flag: string, value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new FlagValueError(flag, value, "not a URL (e.g. https://control.example.com)");
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new FlagValueError(flag, value, "must be an http:// or https:// URL");
  if (u.username || u.password) throw new FlagValueError(flag, value, "must not contain credentials");
  return value.replace(/\/+$/, "");
}

/**
 * The auth key: given inline, or `file:PATH` to read it from a file (Tailscale's syntax; keeps
 * the key out of `ps` and shell history). Throws FlagValueError for an unreadable/empty file.
 */
export function readAuthKeyFlag(flag: string, value: string): string {
  if (!value.startsWith("file:")) {
    if (value.trim() === "") throw new FlagValueError(flag, value, "empty auth key");
    return value;
  }
  const path = value.slice("file:".length);
  let key: string;
  try {
    key = readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new FlagValueError(flag, value, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (key === "") throw new FlagValueError(flag, value, `${path} is empty`);
  return key;
}

const TRUE_WORDS = new Set(["1", "t", "T", "true", "TRUE", "True"]);
const FALSE_WORDS = new Set(["0", "f", "F", "false", "FALSE", "False"]);

/**
 * Rewrites Go flag-package spellings into ones commander understands, so Tailscale habits
 * work: `--name=true|false` of the boolean flags in `boolNames` (also 1/0/t/f, as
 * strconv.ParseBool) → `--name` / `--no-name`; single-dash long flags `-name[=v]` (Go treats
 * `-json` and `--json` alike) → `--name[=v]` when `name` is in `longNames`; `-c=3` → `-c 3`.
 * A non-boolean word for a boolean flag throws FlagValueError. Arguments after `--` are left
 * alone.
 */
export function normalizeGoFlags(argv: readonly string[], boolNames: ReadonlySet<string>, longNames: ReadonlySet<string>): string[] {
  const out: string[] = [];
  let rest = false;
  for (const arg of argv) {
    if (rest || arg === "--") {
      rest = true;
      out.push(arg);
      continue;
    }
    let a = arg;
    const single = /^-([a-z][a-z0-9-]+)(=.*)?$/s.exec(a);
    if (single && longNames.has(single[1]!)) a = `-${a}`;
    const short = /^-([A-Za-z0-9])=(.*)$/s.exec(a);
    if (short) {
      out.push(`-${short[1]}`, short[2]!);
      continue;
    }
    const m = /^--([a-z0-9][a-z0-9-]*)=(.*)$/s.exec(a);
    if (m && boolNames.has(m[1]!)) {
      if (TRUE_WORDS.has(m[2]!)) out.push(`--${m[1]}`);
      else if (FALSE_WORDS.has(m[2]!)) out.push(`--no-${m[1]}`);
      else throw new FlagValueError(`--${m[1]}`, m[2]!, "not a boolean (true or false)");
      continue;
    }
    out.push(a);
  }
  return out;
}

/** Refuses extra positional arguments: `lattice status foo`. */
export function noArgs(command: string, args: readonly string[]): void {
  if (args.length > 0) throw new UsageError(`unexpected non-flag arguments to 'lattice ${command}': ${args.map((a) => JSON.stringify(a)).join(" ")}`);
}
