/**
 * BLAKE2s (RFC 7693) and the WireGuard key derivation built on it. Unkeyed 32-byte
 * hashing and HMAC use node:crypto ('blake2s256'); keyed/short BLAKE2s (mac1, mac2,
 * cookies) uses @noble/hashes, since node:crypto offers neither.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { blake2s as nobleBlake2s } from "@noble/hashes/blake2.js";

/** BLAKE2s-256 of the concatenation of `parts`. */
export function blake2s256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("blake2s256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest().buffer.slice(0)) as Uint8Array;
}

/** Keyed BLAKE2s (RFC 7693 MAC mode) with output length `outLen` (1..32), key 0..32 bytes. */
export function blake2sKeyed(key: Uint8Array, outLen: number, ...parts: Uint8Array[]): Uint8Array {
  const h = nobleBlake2s.create({ key: key.length > 0 ? key : undefined, dkLen: outLen });
  for (const p of parts) h.update(p);
  return h.digest();
}

/** BLAKE2s-128 keyed MAC, as WireGuard's mac1/mac2/cookie ("MAC" in the whitepaper). */
export function mac128(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return blake2sKeyed(key, 16, ...parts);
}

/** HMAC-BLAKE2s-256 (RFC 2104 over BLAKE2s, block 64). */
export function hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("blake2s256", key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const ONE = new Uint8Array([1]);

/** WireGuard/Noise HKDF with one output: KDF1(key, input). */
export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = hmacBlake2s(key, input);
  return hmacBlake2s(t0, ONE);
}

/** WireGuard/Noise HKDF with two outputs: KDF2(key, input). */
export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  const t2 = hmacBlake2s(t0, t1, new Uint8Array([2]));
  return [t1, t2];
}

/** WireGuard/Noise HKDF with three outputs: KDF3(key, input). */
export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  const t2 = hmacBlake2s(t0, t1, new Uint8Array([2]));
  const t3 = hmacBlake2s(t0, t2, new Uint8Array([3]));
  return [t1, t2, t3];
}

/** Constant-time equality; false (not a throw) when lengths differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** True when every byte is zero (constant time in the length). */
export function isAllZero(a: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i];
  return acc === 0;
}
