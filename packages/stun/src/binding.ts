/**
 * STUN Binding (RFC 8489 §3, §6): what a NAT-mapping client sends and what a server
 * answers. Sans-IO: callers own the UDP socket and inject randomness.
 */
import { StunParseError } from "./errors.js";
import {
  Attr, decodeAddress, encodeMessage, encodeXorAddress, METHOD_BINDING, parseMessage, StunClass, TRANSACTION_ID_LENGTH,
  type EncodeOptions, type ParseResult, type StunAddress,
} from "./message.js";

/** Source of random bytes: returns `n` fresh bytes (e.g. `crypto.randomBytes`). */
export type RandomBytes = (n: number) => Uint8Array;

/** A new 96-bit transaction id from `random` (RFC 8489 §5: uniformly random). */
export function newTransactionId(random: RandomBytes): Uint8Array {
  const id = random(TRANSACTION_ID_LENGTH);
  if (id.length !== TRANSACTION_ID_LENGTH) throw new RangeError(`random source returned ${id.length} bytes, want ${TRANSACTION_ID_LENGTH}`);
  return Uint8Array.from(id);
}

/**
 * A Binding request with a fresh transaction id, SOFTWARE (when given) and FINGERPRINT
 * (as Tailscale's netcheck sends). Returns the id to match the response with.
 */
export function createBindingRequest(random: RandomBytes, opts: EncodeOptions = {}): { transactionId: Uint8Array; packet: Uint8Array } {
  const transactionId = newTransactionId(random);
  return { transactionId, packet: encodeMessage(METHOD_BINDING, StunClass.Request, transactionId, [], opts) };
}

/** Parses a datagram as a Binding request; the server answers with its transaction id. Never throws. */
export function parseBindingRequest(b: Uint8Array): ParseResult<{ transactionId: Uint8Array }> {
  const m = parseMessage(b);
  if (!m.ok) return m;
  if (m.value.method !== METHOD_BINDING || m.value.class !== StunClass.Request) {
    return { ok: false, error: new StunParseError("ERR_STUN_NOT_BINDING", `STUN method 0x${m.value.method.toString(16)} class ${m.value.class} is not a Binding request`) };
  }
  return { ok: true, value: { transactionId: Uint8Array.from(m.value.transactionId) } };
}

/** The Binding success response telling the client its reflexive address (XOR-MAPPED-ADDRESS + FINGERPRINT). */
export function createBindingResponse(transactionId: Uint8Array, mapped: StunAddress, opts: EncodeOptions = {}): Uint8Array {
  return encodeMessage(METHOD_BINDING, StunClass.SuccessResponse, transactionId, [{ type: Attr.XorMappedAddress, value: encodeXorAddress(mapped, transactionId) }], opts);
}

/**
 * Parses a Binding success response: its transaction id and mapped address
 * (XOR-MAPPED-ADDRESS preferred, MAPPED-ADDRESS accepted from RFC 3489-era servers).
 * The caller must compare the id with the one it sent. Never throws.
 */
export function parseBindingResponse(b: Uint8Array): ParseResult<{ transactionId: Uint8Array; mapped: StunAddress }> {
  const m = parseMessage(b);
  if (!m.ok) return m;
  const { method, class: cls, transactionId, attributes } = m.value;
  if (method !== METHOD_BINDING || cls !== StunClass.SuccessResponse) {
    return { ok: false, error: new StunParseError("ERR_STUN_NOT_BINDING", `STUN method 0x${method.toString(16)} class ${cls} is not a Binding success response`) };
  }
  const xor = attributes.find((a) => a.type === Attr.XorMappedAddress);
  const plain = attributes.find((a) => a.type === Attr.MappedAddress);
  const attr = xor ?? plain;
  if (attr === undefined) return { ok: false, error: new StunParseError("ERR_STUN_NO_ADDRESS", "Binding response has no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS") };
  const addr = decodeAddress(attr.value, transactionId, attr === xor);
  if (!addr.ok) return addr;
  return { ok: true, value: { transactionId: Uint8Array.from(transactionId), mapped: addr.value } };
}
