/// <reference path="./sodium-native.d.ts" />
/**
 * NaCl crypto_box (X25519 + XSalsa20-Poly1305) through libsodium, for DERP and disco.
 */
import sodium from "sodium-native";
import { checkLength } from "./errors.js";

/** crypto_box nonce length. */
export const BOX_NONCE_LENGTH = 24;
/** crypto_box authenticator overhead. */
export const BOX_OVERHEAD = 16;

/** crypto_box_easy: returns tag ‖ ciphertext (plaintext.length + 16 bytes). */
export function boxSeal(plaintext: Uint8Array, nonce: Uint8Array, theirPublic: Uint8Array, ourPrivate: Uint8Array): Uint8Array {
  checkLength("box nonce", nonce, 24);
  checkLength("box public key", theirPublic, 32);
  checkLength("box private key", ourPrivate, 32);
  const out = new Uint8Array(plaintext.length + BOX_OVERHEAD);
  sodium.crypto_box_easy(out, plaintext, nonce, theirPublic, ourPrivate);
  return out;
}

/** crypto_box_open_easy: the plaintext, or null when authentication fails. */
export function boxOpen(boxed: Uint8Array, nonce: Uint8Array, theirPublic: Uint8Array, ourPrivate: Uint8Array): Uint8Array | null {
  checkLength("box nonce", nonce, 24);
  checkLength("box public key", theirPublic, 32);
  checkLength("box private key", ourPrivate, 32);
  if (boxed.length < BOX_OVERHEAD) return null;
  const out = new Uint8Array(boxed.length - BOX_OVERHEAD);
  return sodium.crypto_box_open_easy(out, boxed, nonce, theirPublic, ourPrivate) ? out : null;
}
