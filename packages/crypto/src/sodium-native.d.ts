// Minimal ambient types for the parts of sodium-native that @lattice/crypto uses
// (the package ships no TypeScript declarations).
declare module "sodium-native" {
  type Buf = Uint8Array;
  /** Returns the ciphertext length. */
  export function crypto_aead_chacha20poly1305_ietf_encrypt(c: Buf, m: Buf, ad: Buf | null, nsec: null, npub: Buf, k: Buf): number;
  /** Returns the plaintext length; throws when the tag does not verify. */
  export function crypto_aead_chacha20poly1305_ietf_decrypt(m: Buf, nsec: null, c: Buf, ad: Buf | null, npub: Buf, k: Buf): number;
  export function crypto_aead_xchacha20poly1305_ietf_encrypt(c: Buf, m: Buf, ad: Buf | null, nsec: null, npub: Buf, k: Buf): number;
  export function crypto_aead_xchacha20poly1305_ietf_decrypt(m: Buf, nsec: null, c: Buf, ad: Buf | null, npub: Buf, k: Buf): number;
  export function crypto_box_easy(c: Buf, m: Buf, n: Buf, pk: Buf, sk: Buf): void;
  export function crypto_box_open_easy(m: Buf, c: Buf, n: Buf, pk: Buf, sk: Buf): boolean;
  export function crypto_box_keypair(pk: Buf, sk: Buf): void;
  export function crypto_box_seed_keypair(pk: Buf, sk: Buf, seed: Buf): void;
  /** Throws when the result is all zero. */
  export function crypto_scalarmult(q: Buf, n: Buf, p: Buf): void;
  export function crypto_scalarmult_base(q: Buf, n: Buf): void;
  export function sodium_memzero(b: Buf): void;
}
