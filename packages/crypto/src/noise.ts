/**
 * The Noise SymmetricState for the ChaChaPoly + BLAKE2s suites (Noise spec rev. 34, §5.2),
 * shared by WireGuard's Noise_IKpsk2 handshake and the control channel's Noise_IK.
 */
import { blake2s256, kdf2, kdf3 } from "./blake2s.js";
import { chachaSeal, chachaOpen } from "./aead.js";

const EMPTY = new Uint8Array(0);

/** Noise SymmetricState with ChaChaPoly + BLAKE2s: chaining key, hash, cipher key + nonce. */
export class SymmetricState {
  /** Chaining key. */
  ck: Uint8Array;
  /** Handshake hash. */
  h: Uint8Array;
  /** Cipher key, null before the first MixKey. */
  k: Uint8Array | null = null;
  /** Cipher nonce. */
  n = 0;

  /** InitializeSymmetric(protocolName): h = name padded or hashed to 32 bytes; ck = h. */
  constructor(protocolName: Uint8Array) {
    if (protocolName.length <= 32) {
      const h = new Uint8Array(32);
      h.set(protocolName);
      this.h = h;
    } else {
      this.h = blake2s256(protocolName);
    }
    this.ck = this.h;
  }

  /**
   * A deep copy (to try a message without committing to its result): the copy's mixing
   * zeroes only its own superseded keys, and zero() on one leaves the other intact.
   */
  clone(): SymmetricState {
    const c = Object.create(SymmetricState.prototype) as SymmetricState;
    c.h = Uint8Array.from(this.h);
    c.ck = this.ck === this.h ? c.h : Uint8Array.from(this.ck);
    c.k = this.k === null ? null : Uint8Array.from(this.k);
    c.n = this.n;
    return c;
  }

  /** Overwrites the chaining key, hash and cipher key with zeros (the state is unusable afterwards). */
  zero(): void {
    this.ck.fill(0);
    this.h.fill(0);
    this.k?.fill(0);
    this.k = null;
  }

  /** Installs a new chaining key and cipher key, zeroing the ones they replace. */
  private rekey(ck: Uint8Array, k: Uint8Array): void {
    // The first chaining key is the protocol-name hash, shared with h (not secret): kept.
    if (this.ck !== this.h) this.ck.fill(0);
    this.k?.fill(0);
    this.ck = ck;
    this.k = k;
    this.n = 0;
  }

  /** MixHash: h = HASH(h ‖ data). */
  mixHash(data: Uint8Array): void {
    this.h = blake2s256(this.h, data);
  }

  /** MixKey: ck, k = HKDF(ck, ikm, 2); n = 0. */
  mixKey(ikm: Uint8Array): void {
    const [ck, k] = kdf2(this.ck, ikm);
    this.rekey(ck, k);
  }

  /** MixKeyAndHash: ck, t, k = HKDF(ck, ikm, 3); MixHash(t); n = 0. */
  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, t, k] = kdf3(this.ck, ikm);
    this.rekey(ck, k);
    this.mixHash(t);
    t.fill(0);
  }

  /** EncryptAndHash: c = ENCRYPT(k, n++, h, p); MixHash(c). Plaintext passes through when no key. */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const c = this.k === null ? Uint8Array.from(plaintext) : chachaSeal(this.k, this.n++, plaintext, this.h);
    this.mixHash(c);
    return c;
  }

  /** DecryptAndHash; null when authentication fails (state unchanged then). */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array | null {
    let p: Uint8Array | null;
    if (this.k === null) p = Uint8Array.from(ciphertext);
    else {
      p = chachaOpen(this.k, this.n, ciphertext, this.h);
      if (p === null) return null;
      this.n++;
    }
    this.mixHash(ciphertext);
    return p;
  }

  /** Split: (k1, k2) = HKDF(ck, ε, 2). The initiator sends with k1. */
  split(): [Uint8Array, Uint8Array] {
    return kdf2(this.ck, EMPTY);
  }
}
