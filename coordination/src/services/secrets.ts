/** Bearer secrets (auth keys, API keys): `<kind>-<prefix>-<secret>`, stored as SHA-256 of the secret. */
import { createHash, timingSafeEqual } from "node:crypto";

/** A freshly made secret: the full string shown once, and what the database keeps. */
export interface NewSecret {
  full: string;
  prefix: string;
  hash: string;
}

/** Makes a new secret of the given kind (e.g. "lkey", "lapi") from injected randomness. */
export function makeSecret(kind: string, random: (n: number) => Buffer): NewSecret {
  const prefix = random(6).toString("hex");
  const secret = random(24).toString("base64url");
  return { full: `${kind}-${prefix}-${secret}`, prefix, hash: sha256(secret) };
}

/** Splits a presented secret into prefix and secret; null when malformed. */
export function splitSecret(kind: string, full: string): { prefix: string; secret: string } | null {
  const m = new RegExp(`^${kind}-([0-9a-f]{12})-([A-Za-z0-9_-]{16,64})$`).exec(full.trim());
  return m ? { prefix: m[1]!, secret: m[2]! } : null;
}

/** SHA-256 hex. */
export function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** Constant-time check that `secret` hashes to `hash`. */
export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(sha256(secret), "hex");
  const b = Buffer.from(hash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
