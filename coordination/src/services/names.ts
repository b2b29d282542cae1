/** MagicDNS names: a node's hostname made into a DNS label, unique within the tailnet. */
import { ValidationError } from "../errors.js";

/** Turns a free-form hostname into a DNS label (lowercase a-z, 0-9, '-', ≤ 63). */
export function sanitizeHostname(hostname: string): string {
  const label = hostname
    .toLowerCase()
    .split(".")[0]!
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/g, "");
  return label || "node";
}

/** Validates an admin-chosen name; throws ValidationError naming the problem. */
export function validateGivenName(name: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
    throw new ValidationError(`name: ${JSON.stringify(name)} must be a DNS label (1-63 of a-z, 0-9, '-', not starting or ending with '-')`);
  }
  return name;
}

/** `base`, or `base-1`, `base-2`... — the first not in `taken`. */
export function uniqueName(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 1; ; i++) {
    const suffix = `-${i}`;
    const cand = base.slice(0, 63 - suffix.length) + suffix;
    if (!taken.has(cand)) return cand;
  }
}
