/**
 * Disco message bodies (the plaintext inside the box), byte for byte as Tailscale's
 * `disco/disco.go`: a 2-byte header (type, version 0) then
 *
 *   Ping (0x01)        txid[12] ‖ node key[32] (optional) ‖ padding (zeros, any length)
 *   Pong (0x02)        txid[12] ‖ source IP[16] (IPv4 as ::ffff:a.b.c.d) ‖ port[2] BE
 *   CallMeMaybe (0x03) endpoint[18] × n (IP[16] ‖ port[2] BE, IPv4 mapped)
 *
 * Parsing follows Go's leniency: a Ping takes 32 trailing bytes as the node key when
 * present and counts the rest as padding; a Pong ignores bytes after its 30; a
 * CallMeMaybe of a version other than 0, or whose length is not a multiple of 18, parses
 * as an empty list. The UDP-relay types (0x04–0x09) are not handled here.
 */
import { DiscoEncodeError, DiscoError } from "./errors.js";

/** Message type bytes. */
export const MessageType = { Ping: 0x01, Pong: 0x02, CallMeMaybe: 0x03 } as const;

/** Transaction id length. */
export const TXID_LENGTH = 12;
/** Node/disco public key length. */
export const KEY_LENGTH = 32;
/** An IP:port on the wire: 16-byte (v4-mapped) address and a big-endian port. */
export const ENDPOINT_LENGTH = 18;
const PONG_LENGTH = TXID_LENGTH + ENDPOINT_LENGTH;

/** An address and port; `ip` is 4 bytes (IPv4) or 16 (IPv6). */
export interface AddrPort {
  readonly ip: Uint8Array;
  readonly port: number;
}

/** A Ping: sent on every path candidate; answered with a Pong of the same txid. */
export interface Ping {
  readonly type: "ping";
  /** 12 random bytes. */
  readonly txId: Uint8Array;
  /** The sender's WireGuard node public key (32 bytes), when it includes it. */
  readonly nodeKey?: Uint8Array;
  /** Zero bytes appended (path MTU probing); 0 when absent. */
  readonly padding: number;
}

/** A Pong: answers a Ping, telling the pinger the address the Ping came from. */
export interface Pong {
  readonly type: "pong";
  readonly txId: Uint8Array;
  /** Where the Ping was seen coming from (the pinger's address as seen by us). */
  readonly src: AddrPort;
}

/** CallMeMaybe: sent over DERP, lists the sender's endpoints so the peer pings them. */
export interface CallMeMaybe {
  readonly type: "call-me-maybe";
  readonly endpoints: readonly AddrPort[];
}

/** Any disco message this package handles. */
export type DiscoMessage = Ping | Pong | CallMeMaybe;

/** Parse result: a value or a typed error, never an exception. */
export type DiscoResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: DiscoError };

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function writeAddrPort(out: Uint8Array, at: number, ap: AddrPort, what: string): void {
  if (!Number.isInteger(ap.port) || ap.port < 0 || ap.port > 0xffff) throw new DiscoEncodeError(`${what} port must be 0..65535, got ${ap.port}`);
  if (ap.ip.length === 4) {
    out.set(V4_MAPPED_PREFIX, at);
    out.set(ap.ip, at + 12);
  } else if (ap.ip.length === 16) {
    out.set(ap.ip, at);
  } else {
    throw new DiscoEncodeError(`${what} address must be 4 or 16 bytes, got ${ap.ip.length}`);
  }
  out[at + 16] = ap.port >> 8;
  out[at + 17] = ap.port & 0xff;
}

function readAddrPort(b: Uint8Array, at: number): AddrPort {
  let mapped = true;
  for (let i = 0; i < 12 && mapped; i++) mapped = b[at + i] === V4_MAPPED_PREFIX[i];
  const ip = mapped ? b.slice(at + 12, at + 16) : b.slice(at, at + 16);
  return { ip, port: (b[at + 16]! << 8) | b[at + 17]! };
}

function checkLen(what: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array) || b.length !== n) throw new DiscoEncodeError(`${what} must be ${n} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
}

/**
 * Encodes a message body (header included).
 * @throws DiscoEncodeError for a txid not 12 bytes, a node key not 32, negative or
 *   fractional padding, an address not 4/16 bytes or a port outside 0..65535.
 */
export function encodeMessage(m: DiscoMessage): Uint8Array {
  switch (m.type) {
    case "ping": {
      checkLen("ping txId", m.txId, TXID_LENGTH);
      if (m.nodeKey !== undefined) checkLen("ping nodeKey", m.nodeKey, KEY_LENGTH);
      if (!Number.isInteger(m.padding) || m.padding < 0 || m.padding > 65535) throw new DiscoEncodeError(`ping padding must be 0..65535, got ${m.padding}`);
      const out = new Uint8Array(2 + TXID_LENGTH + (m.nodeKey ? KEY_LENGTH : 0) + m.padding);
      out[0] = MessageType.Ping;
      out.set(m.txId, 2);
      if (m.nodeKey) out.set(m.nodeKey, 2 + TXID_LENGTH);
      return out;
    }
    case "pong": {
      checkLen("pong txId", m.txId, TXID_LENGTH);
      const out = new Uint8Array(2 + PONG_LENGTH);
      out[0] = MessageType.Pong;
      out.set(m.txId, 2);
      writeAddrPort(out, 2 + TXID_LENGTH, m.src, "pong src");
      return out;
    }
    case "call-me-maybe": {
      const out = new Uint8Array(2 + ENDPOINT_LENGTH * m.endpoints.length);
      out[0] = MessageType.CallMeMaybe;
      m.endpoints.forEach((ep, i) => writeAddrPort(out, 2 + i * ENDPOINT_LENGTH, ep, `call-me-maybe endpoints[${i}]`));
      return out;
    }
    default:
      throw new DiscoEncodeError(`unknown message type ${JSON.stringify((m as { type: unknown }).type)}`);
  }
}

function fail<T>(code: DiscoError["code"], message: string): DiscoResult<T> {
  return { ok: false, error: new DiscoError(code, message) };
}

/** Parses a decrypted message body. Never throws. */
export function parseMessage(b: Uint8Array): DiscoResult<DiscoMessage> {
  if (b.length < 2) return fail("ERR_DISCO_SHORT", `disco message of ${b.length} bytes has no header`);
  const type = b[0]!;
  const version = b[1]!;
  const body = b.subarray(2);
  switch (type) {
    case MessageType.Ping: {
      if (body.length < TXID_LENGTH) return fail("ERR_DISCO_SHORT", `ping body of ${body.length} bytes, need ${TXID_LENGTH}`);
      const rest = body.length - TXID_LENGTH;
      const hasKey = rest >= KEY_LENGTH;
      const value: Ping = {
        type: "ping",
        txId: body.slice(0, TXID_LENGTH),
        ...(hasKey ? { nodeKey: body.slice(TXID_LENGTH, TXID_LENGTH + KEY_LENGTH) } : {}),
        padding: hasKey ? rest - KEY_LENGTH : rest,
      };
      return { ok: true, value };
    }
    case MessageType.Pong:
      if (body.length < PONG_LENGTH) return fail("ERR_DISCO_SHORT", `pong body of ${body.length} bytes, need ${PONG_LENGTH}`);
      return { ok: true, value: { type: "pong", txId: body.slice(0, TXID_LENGTH), src: readAddrPort(body, TXID_LENGTH) } };
    case MessageType.CallMeMaybe: {
      const endpoints: AddrPort[] = [];
      if (version === 0 && body.length % ENDPOINT_LENGTH === 0) {
        for (let at = 0; at < body.length; at += ENDPOINT_LENGTH) endpoints.push(readAddrPort(body, at));
      }
      return { ok: true, value: { type: "call-me-maybe", endpoints } };
    }
    default:
      return fail("ERR_DISCO_UNKNOWN_TYPE", `unhandled disco message type 0x${type.toString(16).padStart(2, "0")}`);
  }
}
