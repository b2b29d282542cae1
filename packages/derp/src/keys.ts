/**
 * Node/mesh key identity: the ONE place keys are compared (constant time) and turned
 * into map ids.
 */
import { constantTimeEqual } from "@lattice/crypto";

/** Constant-time equality of two keys (false when lengths differ). */
export function keyEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && constantTimeEqual(a, b);
}

/** Map id of a 32-byte public key (lowercase hex). */
export function keyId(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString("hex");
}

/** Short printable form for logs (`[abcdef]`, like Tailscale's ShortString). */
export function shortKey(k: Uint8Array): string {
  return `[${Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString("base64").slice(0, 5)}]`;
}
