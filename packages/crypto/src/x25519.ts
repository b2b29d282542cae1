/// <reference path="./sodium-native.d.ts" />
/**
 * X25519 (RFC 7748) through libsodium (sodium-native): ~40 µs per scalar multiplication
 * with no key import step, so nothing needs caching. libsodium clamps the scalar and
 * masks the top bit of u exactly as RFC 7748 §5 requires, and reports an all-zero
 * output, which we surface as {@link LowOrderPointError}.
 */
import sodium from "sodium-native";
import { LowOrderPointError, checkLength } from "./errors.js";

/** Length of X25519 keys and shared secrets. */
export const X25519_KEY_LENGTH = 32;

/** A private/public X25519 key pair. */
export interface X25519KeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** Clamps a 32-byte scalar as RFC 7748 §5 decodeScalar25519 does (returns a copy). */
export function clampScalar(scalar: Uint8Array): Uint8Array {
  checkLength("X25519 scalar", scalar, 32);
  const k = Uint8Array.from(scalar);
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
  return k;
}

/**
 * The X25519 function of RFC 7748: scalar × u. Throws {@link LowOrderPointError} when the
 * result is all zero (the check RFC 7748 §6.1 recommends and WireGuard requires).
 */
export function x25519(scalar: Uint8Array, u: Uint8Array): Uint8Array {
  checkLength("X25519 scalar", scalar, 32);
  checkLength("X25519 public key", u, 32);
  const out = new Uint8Array(32);
  try {
    sodium.crypto_scalarmult(out, scalar, u);
  } catch {
    throw new LowOrderPointError();
  }
  return out;
}

/** The public key (scalar × 9) of a private key. */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  checkLength("X25519 private key", privateKey, 32);
  const out = new Uint8Array(32);
  sodium.crypto_scalarmult_base(out, privateKey);
  return out;
}

/** A fresh key pair from `random` (injected randomness; 32 bytes are drawn and clamped). */
export function x25519GenerateKeyPair(random: (n: number) => Uint8Array): X25519KeyPair {
  const privateKey = clampScalar(random(32));
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/** Diffie-Hellman: our private key with their public key. Alias of {@link x25519}. */
export function x25519SharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return x25519(privateKey, publicKey);
}
