/**
 * STUN message codec, sans-IO (RFC 8489 §5 header, §14 attributes; RFC 5389 is the same
 * wire format). Only what a Binding client and server need is interpreted (Binding
 * method, XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, SOFTWARE, FINGERPRINT); other attributes are
 * kept as opaque `{ type, value }`. Parsing never throws on input bytes: it returns
 * `{ ok: false, error: StunParseError }`.
 */
import { crc32 } from "./crc32.js";
import { StunEncodeError, StunParseError } from "./errors.js";

/** RFC 8489 §5 magic cookie. */
export const MAGIC_COOKIE = 0x2112a442;
/** Header length in bytes. */
export const HEADER_LENGTH = 20;
/** Transaction id length in bytes (96 bits). */
export const TRANSACTION_ID_LENGTH = 12;
/** XOR constant for FINGERPRINT (RFC 8489 §14.7: ASCII "STUN"). */
export const FINGERPRINT_XOR = 0x5354554e;

/** Binding method (RFC 8489 §18.2). */
export const METHOD_BINDING = 0x001;

/** Message classes (RFC 8489 §5: C1 is type bit 8, C0 is type bit 4). */
export const StunClass = {
  Request: 0,
  Indication: 1,
  SuccessResponse: 2,
  ErrorResponse: 3,
} as const;
export type StunClass = (typeof StunClass)[keyof typeof StunClass];

/** Attribute types used here (RFC 8489 §18.3). */
export const Attr = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  XorMappedAddress: 0x0020,
  Software: 0x8022,
  Fingerprint: 0x8028,
} as const;

/** One attribute; `value` aliases the parsed datagram (no padding). */
export interface StunAttribute {
  readonly type: number;
  readonly value: Uint8Array;
}

/** A parsed STUN message. */
export interface StunMessage {
  readonly method: number;
  readonly class: StunClass;
  /** 12 bytes; aliases the datagram. */
  readonly transactionId: Uint8Array;
  readonly attributes: readonly StunAttribute[];
  /** True when a FINGERPRINT attribute was present (and verified). */
  readonly hasFingerprint: boolean;
}

/** A transport address as bytes: `ip` is 4 bytes (family 4) or 16 bytes (family 6); `port` 0..65535. */
export interface StunAddress {
  readonly family: 4 | 6;
  readonly ip: Uint8Array;
  readonly port: number;
}

/** Result of a parse: the value, or the typed reason it was rejected. */
export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: StunParseError };

/** Most attributes we walk in one message; a datagram with more is rejected. */
export const MAX_ATTRIBUTES = 64;

function fail<T>(code: StunParseError["code"], message: string): ParseResult<T> {
  return { ok: false, error: new StunParseError(code, message) };
}

function readU16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Splits a 14-bit message type into method and class (RFC 8489 §5, Figure 3). */
export function splitType(type: number): { method: number; class: StunClass } {
  const cls = (((type >> 7) & 0x2) | ((type >> 4) & 0x1)) as StunClass;
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  return { method, class: cls };
}

/** Joins method and class into the 14-bit message type (RFC 8489 §5). */
export function joinType(method: number, cls: StunClass): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | ((cls & 0x1) << 4) | ((cls & 0x2) << 7);
}

/**
 * Cheap demultiplexing test (RFC 8489 §5 / RFC 7983): at least a header, top two bits zero,
 * the magic cookie, and a length field that is a multiple of 4. Does not validate attributes.
 */
export function looksLikeStun(b: Uint8Array): boolean {
  return b.length >= HEADER_LENGTH && (b[0]! & 0xc0) === 0 && readU32(b, 4) === MAGIC_COOKIE && (readU16(b, 2) & 3) === 0;
}

/**
 * Parses a whole STUN datagram. The length field must match the datagram exactly; each
 * attribute must fit; a FINGERPRINT attribute, when present, must be last, 4 bytes and
 * correct (RFC 8489 §14.7). Never throws.
 */
export function parseMessage(b: Uint8Array): ParseResult<StunMessage> {
  if (b.length < HEADER_LENGTH) return fail("ERR_STUN_SHORT", `STUN message shorter than the ${HEADER_LENGTH}-byte header (${b.length} bytes)`);
  if ((b[0]! & 0xc0) !== 0) return fail("ERR_STUN_NOT_STUN", "top two bits of the STUN message type are not zero");
  if (readU32(b, 4) !== MAGIC_COOKIE) return fail("ERR_STUN_NOT_STUN", "no STUN magic cookie");
  const length = readU16(b, 2);
  if ((length & 3) !== 0) return fail("ERR_STUN_BAD_LENGTH", `STUN length ${length} is not a multiple of 4`);
  if (HEADER_LENGTH + length !== b.length) {
    return fail("ERR_STUN_BAD_LENGTH", `STUN length field ${length} does not match the datagram's ${b.length - HEADER_LENGTH} attribute bytes`);
  }
  const { method, class: cls } = splitType(readU16(b, 0));
  const attributes: StunAttribute[] = [];
  let hasFingerprint = false;
  let o = HEADER_LENGTH;
  while (o < b.length) {
    if (attributes.length >= MAX_ATTRIBUTES) return fail("ERR_STUN_BAD_ATTRIBUTE", `more than ${MAX_ATTRIBUTES} STUN attributes`);
    if (hasFingerprint) return fail("ERR_STUN_BAD_FINGERPRINT", "STUN FINGERPRINT is not the last attribute");
    if (o + 4 > b.length) return fail("ERR_STUN_BAD_ATTRIBUTE", `truncated STUN attribute header at offset ${o}`);
    const type = readU16(b, o);
    const len = readU16(b, o + 2);
    const end = o + 4 + len;
    if (end > b.length) return fail("ERR_STUN_BAD_ATTRIBUTE", `STUN attribute 0x${type.toString(16)} at offset ${o} runs past the message end`);
    if (type === Attr.Fingerprint) {
      if (len !== 4) return fail("ERR_STUN_BAD_FINGERPRINT", `STUN FINGERPRINT length ${len}, want 4`);
      const want = (crc32(b, 0, o) ^ FINGERPRINT_XOR) >>> 0;
      if (readU32(b, o + 4) !== want) return fail("ERR_STUN_BAD_FINGERPRINT", "STUN FINGERPRINT does not match the message");
      hasFingerprint = true;
    }
    attributes.push({ type, value: b.subarray(o + 4, end) });
    o = end + ((4 - (len & 3)) & 3);
  }
  if (o !== b.length) return fail("ERR_STUN_BAD_ATTRIBUTE", "STUN attribute padding runs past the message end");
  return { ok: true, value: { method, class: cls, transactionId: b.subarray(8, 20), attributes, hasFingerprint } };
}

/**
 * Decodes an XOR-MAPPED-ADDRESS (xor = true, RFC 8489 §14.2) or MAPPED-ADDRESS (§14.1)
 * value. Never throws.
 */
export function decodeAddress(value: Uint8Array, transactionId: Uint8Array, xor: boolean): ParseResult<StunAddress> {
  if (value.length < 4) return fail("ERR_STUN_BAD_ADDRESS", `address attribute of ${value.length} bytes`);
  const fam = value[1];
  const want = fam === 0x01 ? 4 : fam === 0x02 ? 16 : -1;
  if (want < 0) return fail("ERR_STUN_BAD_ADDRESS", `address family 0x${fam!.toString(16)} is neither IPv4 (0x01) nor IPv6 (0x02)`);
  if (value.length !== 4 + want) return fail("ERR_STUN_BAD_ADDRESS", `address attribute of ${value.length} bytes for family ${fam === 1 ? 4 : 6}`);
  let port = readU16(value, 2);
  const ip = new Uint8Array(value.subarray(4, 4 + want)); // a plain copy even when the input is a Buffer
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    const pad = xorPad(transactionId);
    for (let i = 0; i < want; i++) ip[i]! ^= pad[i]!;
  }
  return { ok: true, value: { family: want === 4 ? 4 : 6, ip, port } };
}

/** cookie ‖ transaction id: the XOR pad of RFC 8489 §14.2. */
function xorPad(transactionId: Uint8Array): Uint8Array {
  const pad = new Uint8Array(16);
  writeU32(pad, 0, MAGIC_COOKIE);
  pad.set(transactionId.subarray(0, 12), 4);
  return pad;
}

/** Options for {@link encodeMessage}. */
export interface EncodeOptions {
  /** SOFTWARE attribute text (UTF-8, at most 763 bytes per RFC 8489 §14.14). */
  readonly software?: string;
  /** Append FINGERPRINT (default true). */
  readonly fingerprint?: boolean;
}

/**
 * Encodes a message with the given attributes (values unpadded; padding added with zeros),
 * then SOFTWARE and FINGERPRINT per `opts`. Throws StunEncodeError for a transaction id
 * that is not 12 bytes or an attribute value over 65535 bytes.
 */
export function encodeMessage(method: number, cls: StunClass, transactionId: Uint8Array, attrs: readonly StunAttribute[], opts: EncodeOptions = {}): Uint8Array {
  if (transactionId.length !== TRANSACTION_ID_LENGTH) throw new StunEncodeError(`STUN transaction id must be 12 bytes, got ${transactionId.length}`);
  const all: StunAttribute[] = [...attrs];
  if (opts.software !== undefined) {
    const sw = new TextEncoder().encode(opts.software);
    if (sw.length > 763) throw new StunEncodeError(`STUN SOFTWARE must be at most 763 bytes, got ${sw.length}`);
    all.push({ type: Attr.Software, value: sw });
  }
  const fingerprint = opts.fingerprint ?? true;
  let size = HEADER_LENGTH;
  for (const a of all) {
    if (a.value.length > 0xffff) throw new StunEncodeError(`STUN attribute 0x${a.type.toString(16)} over 65535 bytes`);
    size += 4 + ((a.value.length + 3) & ~3);
  }
  if (fingerprint) size += 8;
  if (size - HEADER_LENGTH > 0xffff) throw new StunEncodeError("STUN message over 65535 bytes");
  const out = new Uint8Array(size);
  writeU16(out, 0, joinType(method, cls));
  writeU16(out, 2, size - HEADER_LENGTH);
  writeU32(out, 4, MAGIC_COOKIE);
  out.set(transactionId, 8);
  let o = HEADER_LENGTH;
  for (const a of all) {
    writeU16(out, o, a.type);
    writeU16(out, o + 2, a.value.length);
    out.set(a.value, o + 4);
    o += 4 + ((a.value.length + 3) & ~3);
  }
  if (fingerprint) {
    writeU16(out, o, Attr.Fingerprint);
    writeU16(out, o + 2, 4);
    writeU32(out, o + 4, (crc32(out, 0, o) ^ FINGERPRINT_XOR) >>> 0);
  }
  return out;
}

/** Encodes an XOR-MAPPED-ADDRESS value (RFC 8489 §14.2). Throws StunEncodeError on a bad address. */
export function encodeXorAddress(addr: StunAddress, transactionId: Uint8Array): Uint8Array {
  const n = addr.family === 4 ? 4 : 16;
  if (addr.ip.length !== n) throw new StunEncodeError(`IPv${addr.family} address must be ${n} bytes, got ${addr.ip.length}`);
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 0xffff) throw new StunEncodeError(`port ${addr.port} out of range 0..65535`);
  const v = new Uint8Array(4 + n);
  v[1] = addr.family === 4 ? 0x01 : 0x02;
  writeU16(v, 2, addr.port ^ (MAGIC_COOKIE >>> 16));
  const pad = xorPad(transactionId);
  for (let i = 0; i < n; i++) v[4 + i] = addr.ip[i]! ^ pad[i]!;
  return v;
}
