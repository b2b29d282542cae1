/**
 * @lattice/crypto: X25519, ChaCha20-Poly1305, XChaCha20-Poly1305, BLAKE2s, the
 * WireGuard HKDF, constant-time compare, NaCl box and the Noise symmetric state.
 */
export * from "./errors.js";
export * from "./x25519.js";
export * from "./aead.js";
export * from "./blake2s.js";
export * from "./box.js";
export * from "./noise.js";
