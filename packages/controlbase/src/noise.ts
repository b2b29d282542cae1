/**
 * The Noise IK handshake, `Noise_IK_25519_ChaChaPoly_BLAKE2s` (Noise spec rev. 34), without
 * I/O: bytes in, bytes out. Both the control client and the coordination server use it.
 *
 *   <- s
 *   ...
 *   -> e, es, s, ss      (initiator: ephemeral 32 ‖ enc(static) 48 ‖ enc(payload) n+16)
 *   <- e, ee, se         (responder: ephemeral 32 ‖ enc(payload) n+16)
 *
 * Ephemeral keys are passed in (injected randomness), so published vectors can be replayed.
 * Transport nonces: the Noise spec encodes the 64-bit counter little-endian; Tailscale's
 * ts2021 transport (and so Lattice's control channel) encodes it big-endian. Both are
 * offered through {@link CipherState}'s `endian`.
 */
import {
  SymmetricState,
  chachaOpenNonce,
  chachaSealNonce,
  x25519PublicKey,
  x25519SharedSecret,
} from "@lattice/crypto";

/** The Noise protocol name of this instantiation. */
export const NOISE_IK_PROTOCOL_NAME = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/** AEAD tag length. */
export const TAG_LENGTH = 16;
/** X25519 public key length. */
export const DH_LENGTH = 32;

/** A Noise failure (bad tag, bad length, low-order key, exhausted nonce); `code` is stable. */
export class NoiseError extends Error {
  /** Stable machine-readable code, e.g. "ERR_NOISE_DECRYPT". */
  readonly code: string;
  /** Creates a Noise failure with a stable code. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "NoiseError";
    this.code = code;
  }
}

/** A static or ephemeral X25519 key pair. */
export interface NoiseKeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** Builds a key pair from a 32-byte private key. */
export function noiseKeyPair(privateKey: Uint8Array): NoiseKeyPair {
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

function dh(priv: Uint8Array, pub: Uint8Array): Uint8Array {
  try {
    return x25519SharedSecret(priv, pub);
  } catch {
    throw new NoiseError("ERR_NOISE_DH", "X25519 with a low-order public key");
  }
}

const MAX_NONCE = 0xffff_ffff_ffff_ffffn;

/** A transport-phase CipherState: one key and a 64-bit counter nonce. */
export class CipherState {
  private readonly key: Uint8Array;
  private readonly endian: "little" | "big";
  private readonly nonceBuf = new Uint8Array(12);
  private readonly nonceView = new DataView(this.nonceBuf.buffer);
  private n = 0n;

  /** `endian`: how the counter is written into the last 8 nonce bytes (Noise: little). */
  constructor(key: Uint8Array, endian: "little" | "big") {
    this.key = key;
    this.endian = endian;
  }

  /** The next nonce counter value. */
  get nonce(): bigint {
    return this.n;
  }

  private nextNonce(): Uint8Array {
    // 2^64-1 is reserved by the Noise spec; refuse rather than wrap.
    if (this.n >= MAX_NONCE) throw new NoiseError("ERR_NOISE_NONCE_EXHAUSTED", "cipher exhausted, no more nonces");
    this.nonceView.setBigUint64(4, this.n, this.endian === "little");
    this.n++;
    return this.nonceBuf;
  }

  /** Encrypts `plaintext` with the next nonce (no associated data); returns ciphertext ‖ tag. */
  encrypt(plaintext: Uint8Array): Uint8Array {
    return chachaSealNonce(this.key, this.nextNonce(), plaintext, null);
  }

  /**
   * Decrypts with the next nonce; throws NoiseError("ERR_NOISE_DECRYPT") on a bad tag.
   * The nonce is consumed either way (a failed record ends the session).
   */
  decrypt(ciphertext: Uint8Array): Uint8Array {
    const pt = chachaOpenNonce(this.key, this.nextNonce(), ciphertext, null);
    if (pt === null) throw new NoiseError("ERR_NOISE_DECRYPT", "transport record failed authentication");
    return pt;
  }
}

/** Starts the handshake hash: InitializeSymmetric(protocol name), MixHash(prologue). */
function initialize(prologue: Uint8Array): SymmetricState {
  const ss = new SymmetricState(new TextEncoder().encode(NOISE_IK_PROTOCOL_NAME));
  ss.mixHash(prologue);
  return ss;
}

/** DecryptAndHash that throws instead of returning null. */
function decryptAndHash(ss: SymmetricState, ciphertext: Uint8Array): Uint8Array {
  const pt = ss.decryptAndHash(ciphertext);
  if (pt === null) throw new NoiseError("ERR_NOISE_DECRYPT", "handshake message failed authentication");
  return pt;
}

/** Split into transport CipherStates (k1 is the initiator's sending key). */
function split(ss: SymmetricState, endian: "little" | "big"): [CipherState, CipherState] {
  const [k1, k2] = ss.split();
  return [new CipherState(k1, endian), new CipherState(k2, endian)];
}

/** The result of a completed handshake, from one side's point of view. */
export interface NoiseSession {
  /** Encrypts what this side sends. */
  readonly send: CipherState;
  /** Decrypts what this side receives. */
  readonly recv: CipherState;
  /** The peer's static public key (for the responder: learned from message 1). */
  readonly remoteStatic: Uint8Array;
  /** The final handshake hash (channel binding). */
  readonly handshakeHash: Uint8Array;
}

/** Options common to both roles. */
export interface HandshakeOptions {
  prologue: Uint8Array;
  /** This side's static key pair. */
  localStatic: NoiseKeyPair;
  /** This side's ephemeral key pair (fresh per handshake; injected for vectors). */
  localEphemeral: NoiseKeyPair;
  /** Transport nonce encoding (Noise spec: "little"; ts2021: "big"). */
  endian: "little" | "big";
}

/** An initiator that sent message 1 and waits for message 2. */
export interface InitiatorPending {
  /** Message 1 to send. */
  readonly message: Uint8Array;
  /** Consumes message 2; returns its payload and the session. Throws NoiseError. */
  readResponse(message2: Uint8Array): { payload: Uint8Array; session: NoiseSession };
}

/** Starts an IK handshake as initiator: builds message 1 carrying `payload`. */
export function initiatorStart(
  opts: HandshakeOptions & { remoteStatic: Uint8Array; payload?: Uint8Array },
): InitiatorPending {
  const ss = initialize(opts.prologue);
  const rs = opts.remoteStatic;
  ss.mixHash(rs); // <- s
  const e = opts.localEphemeral;
  ss.mixHash(e.publicKey); // -> e
  ss.mixKey(dh(e.privateKey, rs)); // es
  const encStatic = ss.encryptAndHash(opts.localStatic.publicKey); // s
  ss.mixKey(dh(opts.localStatic.privateKey, rs)); // ss
  const encPayload = ss.encryptAndHash(opts.payload ?? new Uint8Array(0));
  const message = concat(e.publicKey, encStatic, encPayload);
  let done = false;
  return {
    message,
    readResponse(message2: Uint8Array) {
      if (done) throw new NoiseError("ERR_NOISE_STATE", "handshake already finished");
      done = true;
      if (message2.length < DH_LENGTH + TAG_LENGTH) {
        throw new NoiseError("ERR_NOISE_SHORT", `handshake response is ${message2.length} bytes, need ≥ ${DH_LENGTH + TAG_LENGTH}`);
      }
      const re = message2.subarray(0, DH_LENGTH);
      ss.mixHash(re); // <- e
      ss.mixKey(dh(e.privateKey, re)); // ee
      ss.mixKey(dh(opts.localStatic.privateKey, re)); // se
      const payload = decryptAndHash(ss, message2.subarray(DH_LENGTH));
      const [c1, c2] = split(ss, opts.endian);
      return { payload, session: { send: c1, recv: c2, remoteStatic: rs, handshakeHash: ss.h } };
    },
  };
}

/** A responder that consumed message 1 and may now answer. */
export interface ResponderPending {
  /** The initiator's static public key (authenticated by the `ss` DH). */
  readonly remoteStatic: Uint8Array;
  /** Payload of message 1. */
  readonly payload: Uint8Array;
  /** Builds message 2 carrying `payload` and returns it with the session. */
  respond(payload?: Uint8Array): { message: Uint8Array; session: NoiseSession };
}

/** Consumes message 1 as responder. Throws NoiseError when it does not authenticate. */
export function responderRead(opts: HandshakeOptions & { message: Uint8Array }): ResponderPending {
  const m = opts.message;
  const min = DH_LENGTH + DH_LENGTH + TAG_LENGTH + TAG_LENGTH;
  if (m.length < min) throw new NoiseError("ERR_NOISE_SHORT", `handshake initiation is ${m.length} bytes, need ≥ ${min}`);
  const ss = initialize(opts.prologue);
  const s = opts.localStatic;
  ss.mixHash(s.publicKey); // <- s
  const re = m.subarray(0, DH_LENGTH);
  ss.mixHash(re); // -> e
  ss.mixKey(dh(s.privateKey, re)); // es
  const rs = decryptAndHash(ss, m.subarray(DH_LENGTH, DH_LENGTH + DH_LENGTH + TAG_LENGTH)); // s
  ss.mixKey(dh(s.privateKey, rs)); // ss
  const payload = decryptAndHash(ss, m.subarray(DH_LENGTH + DH_LENGTH + TAG_LENGTH));
  let done = false;
  return {
    remoteStatic: rs,
    payload,
    respond(respPayload?: Uint8Array) {
      if (done) throw new NoiseError("ERR_NOISE_STATE", "handshake already finished");
      done = true;
      const e = opts.localEphemeral;
      ss.mixHash(e.publicKey); // <- e
      ss.mixKey(dh(e.privateKey, re)); // ee
      ss.mixKey(dh(e.privateKey, rs)); // se
      const enc = ss.encryptAndHash(respPayload ?? new Uint8Array(0));
      const [c1, c2] = split(ss, opts.endian);
      return {
        message: concat(e.publicKey, enc),
        session: { send: c2, recv: c1, remoteStatic: rs, handshakeHash: ss.h },
      };
    },
  };
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
