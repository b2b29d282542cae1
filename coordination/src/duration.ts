/** Durations written as Go-style strings: "24h", "90d", "1h30m", "45s", "500ms". */
import { ValidationError } from "./errors.js";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration into ms; throws ValidationError naming `field`. */
export function parseDuration(text: string, field = "duration"): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  const s = text.trim();
  if (s === "") throw new ValidationError(`${field}: empty duration`);
  for (;;) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) break;
    total += Number(m[1]) * UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length) throw new ValidationError(`${field}: ${JSON.stringify(text)} is not a duration (e.g. 30s, 15m, 24h, 90d)`);
  return Math.round(total);
}
