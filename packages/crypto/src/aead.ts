/// <reference path="./sodium-native.d.ts" />
/**
 * ChaCha20-Poly1305 (IETF, RFC 8439) and XChaCha20-Poly1305 through libsodium.
 * WireGuard's nonce is 4 zero bytes followed by the 64-bit little-endian counter.
 * The `*Into` variants write into caller-owned buffers (the data path's seam).
 */
import sodium from "sodium-native";
import { checkLength } from "./errors.js";

/** Poly1305 tag length. */
export const AEAD_TAG_LENGTH = 16;
/** ChaCha20-Poly1305 key length. */
export const AEAD_KEY_LENGTH = 32;
/** XChaCha20-Poly1305 nonce length. */
export const XAEAD_NONCE_LENGTH = 24;

function counterNonce(nonce: Uint8Array, counter: bigint | number): Uint8Array {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  if (typeof counter === "number") {
    const lo = counter >>> 0;
    const hi = Math.floor(counter / 0x1_0000_0000) >>> 0;
    nonce[4] = lo & 255; nonce[5] = (lo >>> 8) & 255; nonce[6] = (lo >>> 16) & 255; nonce[7] = lo >>> 24;
    nonce[8] = hi & 255; nonce[9] = (hi >>> 8) & 255; nonce[10] = (hi >>> 16) & 255; nonce[11] = hi >>> 24;
  } else {
    new DataView(nonce.buffer, nonce.byteOffset, 12).setBigUint64(4, counter, true);
  }
  return nonce;
}

/** Encodes a WireGuard nonce (4 zero bytes + u64 LE counter) into a new 12-byte array. */
export function wireguardNonce(counter: bigint | number): Uint8Array {
  return counterNonce(new Uint8Array(12), counter);
}

/** Seals with an explicit 12-byte nonce; returns ciphertext ‖ tag. */
export function chachaSealNonce(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | null): Uint8Array {
  checkLength("ChaCha20-Poly1305 key", key, 32);
  checkLength("ChaCha20-Poly1305 nonce", nonce, 12);
  const out = new Uint8Array(plaintext.length + AEAD_TAG_LENGTH);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key);
  return out;
}

/** Opens with an explicit 12-byte nonce; null when authentication fails. */
export function chachaOpenNonce(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array | null): Uint8Array | null {
  checkLength("ChaCha20-Poly1305 key", key, 32);
  checkLength("ChaCha20-Poly1305 nonce", nonce, 12);
  if (ciphertext.length < AEAD_TAG_LENGTH) return null;
  const out = new Uint8Array(ciphertext.length - AEAD_TAG_LENGTH);
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce, key);
  } catch {
    return null;
  }
  return out;
}

/** Seals with the WireGuard counter nonce; returns ciphertext ‖ tag. */
export function chachaSeal(key: Uint8Array, counter: bigint | number, plaintext: Uint8Array, ad: Uint8Array | null = null): Uint8Array {
  return chachaSealNonce(key, wireguardNonce(counter), plaintext, ad);
}

/** Opens with the WireGuard counter nonce; null when authentication fails. */
export function chachaOpen(key: Uint8Array, counter: bigint | number, ciphertext: Uint8Array, ad: Uint8Array | null = null): Uint8Array | null {
  return chachaOpenNonce(key, wireguardNonce(counter), ciphertext, ad);
}

/**
 * A ChaCha20-Poly1305 context with its own nonce scratch buffer, for the data path:
 * no allocation per packet. Not shareable between threads (one per worker).
 */
export class ChaChaPoly {
  private readonly nonce = new Uint8Array(12);

  /**
   * Seals `plaintext` into `out` (which must hold plaintext.length + 16 bytes) and returns
   * the number of bytes written. `out` and `plaintext` may be the same memory (in place).
   */
  sealInto(out: Uint8Array, key: Uint8Array, counter: bigint | number, plaintext: Uint8Array, ad: Uint8Array | null = null): number {
    const end = plaintext.length + AEAD_TAG_LENGTH;
    return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out.length === end ? out : out.subarray(0, end), plaintext, ad, null, counterNonce(this.nonce, counter), key);
  }

  /**
   * Opens `ciphertext` into `out` (at least ciphertext.length − 16 bytes); returns the
   * plaintext length, or −1 when authentication fails (nothing thrown).
   */
  openInto(out: Uint8Array, key: Uint8Array, counter: bigint | number, ciphertext: Uint8Array, ad: Uint8Array | null = null): number {
    if (ciphertext.length < AEAD_TAG_LENGTH) return -1;
    try {
      const end = ciphertext.length - AEAD_TAG_LENGTH;
      return sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out.length === end ? out : out.subarray(0, end), null, ciphertext, ad, counterNonce(this.nonce, counter), key);
    } catch {
      return -1;
    }
  }
}

/** XChaCha20-Poly1305 seal (24-byte nonce); returns ciphertext ‖ tag. */
export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | null = null): Uint8Array {
  checkLength("XChaCha20-Poly1305 key", key, 32);
  checkLength("XChaCha20-Poly1305 nonce", nonce, 24);
  const out = new Uint8Array(plaintext.length + AEAD_TAG_LENGTH);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key);
  return out;
}

/** XChaCha20-Poly1305 open; null when authentication fails. */
export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array | null = null): Uint8Array | null {
  checkLength("XChaCha20-Poly1305 key", key, 32);
  checkLength("XChaCha20-Poly1305 nonce", nonce, 24);
  if (ciphertext.length < AEAD_TAG_LENGTH) return null;
  const out = new Uint8Array(ciphertext.length - AEAD_TAG_LENGTH);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce, key);
  } catch {
    return null;
  }
  return out;
}
