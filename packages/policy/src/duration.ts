/** Go time.Duration syntax, as the service parses and prints SSH check periods. */

/** Parses a Go time.Duration string into seconds; null when malformed. */
export function parseGoDuration(s: string): number | null {
  const m = /^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/.exec(s);
  if (!m && s !== "0") return null;
  if (s === "0") return 0;
  const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, "µs": 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const part of s.replace(/^[-+]/, "").matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(part[1]) * unit[part[2]];
  }
  return s.startsWith("-") ? -total : total;
}

/** Formats seconds the way Go prints a Duration ("1h0m0s", "168h0m1s", "-1m0s"). */
export function formatGoDuration(sec: number): string {
  const neg = sec < 0;
  let s = Math.abs(sec);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  let out = h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
  if (neg) out = "-" + out;
  return out;
}
