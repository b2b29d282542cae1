/**
 * WireGuard message layouts (whitepaper §5.4; all integers little-endian; the type is
 * one byte followed by three zero bytes). Parsers check the exact length and the
 * reserved bytes and return null on malformed input; fields are views into the input.
 *
 * | message          | size   | layout                                                        |
 * |------------------|--------|---------------------------------------------------------------|
 * | initiation (1)   | 148    | sender u32 @4, ephemeral 32 @8, static 48 @40, timestamp 28 @88, mac1 @116, mac2 @132 |
 * | response (2)     | 92     | sender u32 @4, receiver u32 @8, ephemeral 32 @12, empty 16 @44, mac1 @60, mac2 @76 |
 * | cookie reply (3) | 64     | receiver u32 @4, nonce 24 @8, cookie 32 @32                   |
 * | transport (4)    | 32 + n | receiver u32 @4, counter u64 @8, ciphertext (n padded) + tag @16 |
 */
import { PADDING_MULTIPLE } from "./constants.js";

/** Message type bytes. */
export const MESSAGE_INITIATION = 1;
/** Handshake response type. */
export const MESSAGE_RESPONSE = 2;
/** Cookie reply type. */
export const MESSAGE_COOKIE_REPLY = 3;
/** Transport data type. */
export const MESSAGE_TRANSPORT = 4;

/** Size of a handshake initiation. */
export const INITIATION_SIZE = 148;
/** Size of a handshake response. */
export const RESPONSE_SIZE = 92;
/** Size of a cookie reply. */
export const COOKIE_REPLY_SIZE = 64;
/** Transport header (type, receiver, counter). */
export const TRANSPORT_HEADER_SIZE = 16;
/** Smallest transport message (a keepalive: header + tag). */
export const TRANSPORT_MIN_SIZE = 32;

/** Offset of mac1 in initiation/response. */
export const INITIATION_MAC1_OFFSET = 116;
/** Offset of mac2 in an initiation. */
export const INITIATION_MAC2_OFFSET = 132;
/** Offset of mac1 in a response. */
export const RESPONSE_MAC1_OFFSET = 60;
/** Offset of mac2 in a response. */
export const RESPONSE_MAC2_OFFSET = 76;

/** A parsed initiation (views into the datagram). */
export interface InitiationMessage {
  sender: number;
  /** ephemeral ‖ enc(static) ‖ enc(timestamp): the Noise message body, 108 bytes. */
  body: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

/** A parsed response (views into the datagram). */
export interface ResponseMessage {
  sender: number;
  receiver: number;
  /** ephemeral ‖ enc(empty): the Noise message body, 48 bytes. */
  body: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

/** A parsed cookie reply. */
export interface CookieReplyMessage {
  receiver: number;
  nonce: Uint8Array;
  /** enc(cookie 16) ‖ tag 16. */
  cookie: Uint8Array;
}

/** A parsed transport message header; `ciphertext` includes the tag. */
export interface TransportMessage {
  receiver: number;
  /** The 64-bit counter as a number; values ≥ 2^53 come back as Infinity. */
  counter: number;
  ciphertext: Uint8Array;
}

function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 255; b[o + 1] = (v >>> 8) & 255; b[o + 2] = (v >>> 16) & 255; b[o + 3] = (v >>> 24) & 255;
}

/** The type of a datagram (first byte, reserved bytes zero), or 0 when not a WireGuard header. */
export function messageType(b: Uint8Array): number {
  if (b.length < 4 || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 0;
  const t = b[0];
  return t >= 1 && t <= 4 ? t : 0;
}

/** Reads the little-endian u32 at `offset`. */
export function readU32(b: Uint8Array, offset: number): number {
  return u32(b, offset);
}

/** Parses an initiation; null unless exactly 148 bytes of type 1. */
export function parseInitiation(b: Uint8Array): InitiationMessage | null {
  if (b.length !== INITIATION_SIZE || messageType(b) !== MESSAGE_INITIATION) return null;
  return { sender: u32(b, 4), body: b.subarray(8, 116), mac1: b.subarray(116, 132), mac2: b.subarray(132, 148) };
}

/** Builds an initiation with zero macs (fill them with the cookie module). */
export function buildInitiation(sender: number, body: Uint8Array): Uint8Array {
  if (body.length !== 108) throw new RangeError(`initiation body must be 108 bytes, got ${body.length}`);
  const b = new Uint8Array(INITIATION_SIZE);
  b[0] = MESSAGE_INITIATION;
  putU32(b, 4, sender);
  b.set(body, 8);
  return b;
}

/** Parses a response; null unless exactly 92 bytes of type 2. */
export function parseResponse(b: Uint8Array): ResponseMessage | null {
  if (b.length !== RESPONSE_SIZE || messageType(b) !== MESSAGE_RESPONSE) return null;
  return { sender: u32(b, 4), receiver: u32(b, 8), body: b.subarray(12, 60), mac1: b.subarray(60, 76), mac2: b.subarray(76, 92) };
}

/** Builds a response with zero macs. */
export function buildResponse(sender: number, receiver: number, body: Uint8Array): Uint8Array {
  if (body.length !== 48) throw new RangeError(`response body must be 48 bytes, got ${body.length}`);
  const b = new Uint8Array(RESPONSE_SIZE);
  b[0] = MESSAGE_RESPONSE;
  putU32(b, 4, sender);
  putU32(b, 8, receiver);
  b.set(body, 12);
  return b;
}

/** Parses a cookie reply; null unless exactly 64 bytes of type 3. */
export function parseCookieReply(b: Uint8Array): CookieReplyMessage | null {
  if (b.length !== COOKIE_REPLY_SIZE || messageType(b) !== MESSAGE_COOKIE_REPLY) return null;
  return { receiver: u32(b, 4), nonce: b.subarray(8, 32), cookie: b.subarray(32, 64) };
}

/** Builds a cookie reply from its parts. */
export function buildCookieReply(receiver: number, nonce: Uint8Array, encryptedCookie: Uint8Array): Uint8Array {
  if (nonce.length !== 24 || encryptedCookie.length !== 32) throw new RangeError("cookie reply nonce must be 24 and cookie 32 bytes");
  const b = new Uint8Array(COOKIE_REPLY_SIZE);
  b[0] = MESSAGE_COOKIE_REPLY;
  putU32(b, 4, receiver);
  b.set(nonce, 8);
  b.set(encryptedCookie, 32);
  return b;
}

/** Parses a transport message header; null when shorter than 32 bytes or not type 4. */
export function parseTransport(b: Uint8Array): TransportMessage | null {
  if (b.length < TRANSPORT_MIN_SIZE || messageType(b) !== MESSAGE_TRANSPORT) return null;
  const lo = u32(b, 8);
  const hi = u32(b, 12);
  const counter = hi >= 0x200000 ? Infinity : hi * 0x1_0000_0000 + lo;
  return { receiver: u32(b, 4), counter, ciphertext: b.subarray(16) };
}

/** Writes the transport header (type 4, receiver, counter) into `b[0..16)`. */
export function writeTransportHeader(b: Uint8Array, receiver: number, counter: number): void {
  b[0] = MESSAGE_TRANSPORT; b[1] = 0; b[2] = 0; b[3] = 0;
  putU32(b, 4, receiver);
  putU32(b, 8, counter >>> 0);
  putU32(b, 12, Math.floor(counter / 0x1_0000_0000));
}

/**
 * Padded plaintext size for a packet of `size` bytes: next multiple of 16, capped at the
 * MTU (as wireguard-go's calculatePaddingSize; packets above the MTU are padded modulo it).
 */
export function paddedSize(size: number, mtu: number): number {
  if (mtu <= 0) return (size + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  const lastUnit = size > mtu ? size % mtu : size;
  let padded = (lastUnit + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (padded > mtu) padded = mtu;
  return size - lastUnit + padded;
}
