/**
 * The disco packet wrapper of Tailscale's magicsock (`disco.Magic`,
 * `LooksLikeDiscoWrapper`, `key.DiscoShared.Seal`): magic `TS💬` (54 53 f0 9f 92 ac) ‖
 * sender disco public key[32] ‖ nonce[24] ‖ NaCl box (X25519 + XSalsa20-Poly1305;
 * 16-byte tag then ciphertext) of the message body. Sans-IO: the caller supplies keys and
 * the nonce (24 random bytes from its injected randomness).
 */
import { BOX_NONCE_LENGTH, BOX_OVERHEAD, boxOpen, boxSeal, constantTimeEqual } from "@lattice/crypto";
import { DiscoEncodeError, DiscoError } from "./errors.js";
import { type DiscoMessage, type DiscoResult, encodeMessage, KEY_LENGTH, parseMessage } from "./message.js";

/** `TS💬` in UTF-8. */
export const MAGIC = Uint8Array.of(0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac);
/** Bytes before the box: magic, sender key, nonce. */
export const HEADER_LENGTH = MAGIC.length + KEY_LENGTH + BOX_NONCE_LENGTH;

/** A disco key pair (X25519, 32 bytes each). */
export interface DiscoKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** What `open` returns: the message and the sender's disco public key. */
export interface OpenedDisco {
  readonly message: DiscoMessage;
  readonly sender: Uint8Array;
}

/** Whether `b` starts like a disco packet (magic, and long enough for key and nonce). */
export function looksLikeDisco(b: Uint8Array): boolean {
  if (b.length < HEADER_LENGTH) return false;
  for (let i = 0; i < MAGIC.length; i++) if (b[i] !== MAGIC[i]) return false;
  return true;
}

/** The sender's disco public key (a view into `b`), or null when `b` is not disco. */
export function senderKey(b: Uint8Array): Uint8Array | null {
  return looksLikeDisco(b) ? b.subarray(MAGIC.length, MAGIC.length + KEY_LENGTH) : null;
}

function checkKey(what: string, k: Uint8Array): void {
  if (!(k instanceof Uint8Array) || k.length !== KEY_LENGTH) throw new DiscoEncodeError(`${what} must be ${KEY_LENGTH} bytes`);
}

/**
 * Seals `msg` from `sender` to `peerPublic` with `nonce` (24 bytes; never reuse one with
 * the same key pair). Returns the whole packet.
 * @throws DiscoEncodeError for bad key/nonce lengths or an unencodable message.
 */
export function seal(msg: DiscoMessage, sender: DiscoKeyPair, peerPublic: Uint8Array, nonce: Uint8Array): Uint8Array {
  checkKey("sender public key", sender.publicKey);
  checkKey("sender private key", sender.privateKey);
  checkKey("peer public key", peerPublic);
  if (!(nonce instanceof Uint8Array) || nonce.length !== BOX_NONCE_LENGTH) throw new DiscoEncodeError(`nonce must be ${BOX_NONCE_LENGTH} bytes`);
  const boxed = boxSeal(encodeMessage(msg), nonce, peerPublic, sender.privateKey);
  const out = new Uint8Array(HEADER_LENGTH + boxed.length);
  out.set(MAGIC, 0);
  out.set(sender.publicKey, MAGIC.length);
  out.set(nonce, MAGIC.length + KEY_LENGTH);
  out.set(boxed, HEADER_LENGTH);
  return out;
}

/**
 * Opens a disco packet from `peerPublic` addressed to the holder of `localPrivate`. The
 * sender key carried in the packet must equal `peerPublic` (look the peer up first with
 * {@link senderKey}). Never throws on packet content: failures come back as a typed
 * {@link DiscoError} to count and drop.
 * @throws DiscoEncodeError when `localPrivate` or `peerPublic` is not 32 bytes (caller bug).
 */
export function open(b: Uint8Array, localPrivate: Uint8Array, peerPublic: Uint8Array): DiscoResult<OpenedDisco> {
  checkKey("local private key", localPrivate);
  checkKey("peer public key", peerPublic);
  const sender = senderKey(b);
  if (sender === null) return { ok: false, error: notDisco(b.length) };
  if (!constantTimeEqual(sender, peerPublic)) {
    return { ok: false, error: new DiscoError("ERR_DISCO_SENDER_MISMATCH", "disco packet is from another sender key than the expected peer") };
  }
  const nonce = b.subarray(MAGIC.length + KEY_LENGTH, HEADER_LENGTH);
  const boxed = b.subarray(HEADER_LENGTH);
  const plain = boxed.length < BOX_OVERHEAD ? null : boxOpen(boxed, nonce, peerPublic, localPrivate);
  if (plain === null) return { ok: false, error: new DiscoError("ERR_DISCO_AUTH", `disco box of ${boxed.length} bytes failed authentication`) };
  const parsed = parseMessage(plain);
  if (!parsed.ok) return parsed;
  return { ok: true, value: { message: parsed.value, sender: sender.slice() } };
}

function notDisco(len: number): DiscoError {
  return new DiscoError("ERR_DISCO_NOT_DISCO", `not a disco packet (${len} bytes; need the TS💬 magic and ${HEADER_LENGTH} header bytes)`);
}
