/**
 * The Noise core of WireGuard: Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (Noise spec rev. 34,
 * §5 processing rules; WireGuard whitepaper §5.4.2–5.4.4). The symmetric state and the
 * two IK messages are generic over prologue, PSK and payloads, so the published
 * cacophony vector checks them; WireGuard's use (prologue = the identifier, TAI64N payload
 * in message A, empty payload in message B) lives in the device.
 *
 *   IKpsk2:  <- s
 *            ...
 *            -> e, es, s, ss
 *            <- e, ee, se, psk
 */
import { SymmetricState, x25519, x25519PublicKey, clampScalar } from "@lattice/crypto";

export { SymmetricState };

/** Static or ephemeral X25519 key pair. */
export interface NoiseKeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** Builds a key pair from a 32-byte private key (clamped on use). */
export function noiseKeyPair(privateKey: Uint8Array): NoiseKeyPair {
  const k = clampScalar(privateKey);
  return { privateKey: k, publicKey: x25519PublicKey(k) };
}

/**
 * Starts an IK handshake: InitializeSymmetric(name), MixHash(prologue), MixHash(rs)
 * (the responder's static key, known to both in advance).
 */
export function ikInitialize(protocolName: string, prologue: Uint8Array, responderStatic: Uint8Array): SymmetricState {
  const st = new SymmetricState(new TextEncoder().encode(protocolName));
  st.mixHash(prologue);
  st.mixHash(responderStatic);
  return st;
}

/**
 * Initiator writes message A: e, es, s, ss, payload. Returns e.pub ‖ enc(s.pub) ‖ enc(payload)
 * (32 + 48 + payload + 16 bytes). Throws LowOrderPointError if a DH result is zero.
 */
export function ikWriteA(st: SymmetricState, s: NoiseKeyPair, e: NoiseKeyPair, rs: Uint8Array, payload: Uint8Array, ss?: Uint8Array): Uint8Array {
  st.mixHash(e.publicKey);
  st.mixKey(e.publicKey); // PSK handshakes: the "e" token also mixes the key.
  mixDh(st, x25519(e.privateKey, rs));
  const encS = st.encryptAndHash(s.publicKey);
  if (ss) st.mixKey(ss);
  else mixDh(st, x25519(s.privateKey, rs));
  const encP = st.encryptAndHash(payload);
  const out = new Uint8Array(32 + encS.length + encP.length);
  out.set(e.publicKey, 0);
  out.set(encS, 32);
  out.set(encP, 32 + encS.length);
  return out;
}

/** What the responder learns from message A. */
export interface IkMessageA {
  re: Uint8Array;
  rs: Uint8Array;
  payload: Uint8Array;
}

/**
 * Responder reads message A. `staticDh(rs)` returns DH(s, rs) (lets the device use a
 * precomputed value and refuse unknown peers by returning null). Null on any failure.
 * Throws LowOrderPointError if a DH result is zero.
 */
export function ikReadA(
  st: SymmetricState, s: NoiseKeyPair, msg: Uint8Array, staticDh?: (rs: Uint8Array) => Uint8Array | null,
): IkMessageA | null {
  if (msg.length < 32 + 48 + 16) return null;
  const re = Uint8Array.from(msg.subarray(0, 32));
  st.mixHash(re);
  st.mixKey(re);
  mixDh(st, x25519(s.privateKey, re));
  const rs = st.decryptAndHash(msg.subarray(32, 80));
  if (rs === null) return null;
  if (staticDh) {
    const ss = staticDh(rs);
    if (ss === null) return null;
    st.mixKey(ss);
  } else {
    mixDh(st, x25519(s.privateKey, rs));
  }
  const payload = st.decryptAndHash(msg.subarray(80));
  if (payload === null) return null;
  return { re, rs, payload };
}

/** Responder writes message B: e, ee, se, psk, payload. Returns e.pub ‖ enc(payload). */
export function ikWriteB(st: SymmetricState, e: NoiseKeyPair, re: Uint8Array, rs: Uint8Array, psk: Uint8Array, payload: Uint8Array): Uint8Array {
  st.mixHash(e.publicKey);
  st.mixKey(e.publicKey);
  mixDh(st, x25519(e.privateKey, re));
  mixDh(st, x25519(e.privateKey, rs));
  st.mixKeyAndHash(psk);
  const encP = st.encryptAndHash(payload);
  const out = new Uint8Array(32 + encP.length);
  out.set(e.publicKey, 0);
  out.set(encP, 32);
  return out;
}

/** Initiator reads message B; returns the responder's ephemeral and the payload, or null. */
export function ikReadB(st: SymmetricState, s: NoiseKeyPair, e: NoiseKeyPair, msg: Uint8Array, psk: Uint8Array): { re: Uint8Array; payload: Uint8Array } | null {
  if (msg.length < 32 + 16) return null;
  const re = Uint8Array.from(msg.subarray(0, 32));
  st.mixHash(re);
  st.mixKey(re);
  mixDh(st, x25519(e.privateKey, re));
  mixDh(st, x25519(s.privateKey, re));
  st.mixKeyAndHash(psk);
  const payload = st.decryptAndHash(msg.subarray(32));
  if (payload === null) return null;
  return { re, payload };
}

/** MixKey(dh) of a DH result computed here, which is then zeroed (it is key material). */
function mixDh(st: SymmetricState, dh: Uint8Array): void {
  st.mixKey(dh);
  dh.fill(0);
}

/** WireGuard's initial handshake state for responder `responderStatic`. */
export function wireguardInitialize(responderStatic: Uint8Array): SymmetricState {
  return ikInitialize("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s", new TextEncoder().encode("WireGuard v1 zx2c4 Jason@zx2c4.com"), responderStatic);
}
