/**
 * DERP login (derp.go "Protocol flow"): server → ServerKey; client → ClientInfo
 * (client key ‖ nonce ‖ NaCl box of JSON, sealed to the server key); server → ServerInfo
 * (nonce ‖ box of JSON, sealed to the client key). Boxes are crypto_box (X25519 +
 * XSalsa20-Poly1305) from @lattice/crypto; nonces come from injected randomness.
 */
import { boxOpen, boxSeal } from "@lattice/crypto";
import { FrameType, KEY_LEN, MAGIC, MAX_CLIENT_INFO_FRAME, MAX_INFO_LEN, NONCE_LEN, PROTOCOL_VERSION } from "./constants.js";
import { DerpProtocolError } from "./errors.js";
import { encodeFrame } from "./frames.js";
import { keyEqual } from "./keys.js";

/** Source of random bytes. */
export type RandomBytes = (n: number) => Uint8Array;

/** What a client says about itself (Tailscale's ClientInfo JSON). */
export interface ClientInfo {
  /** Pre-shared mesh key (32 bytes) for trusted relays; absent for ordinary clients. */
  readonly meshKey?: Uint8Array;
  readonly version: number;
  readonly canAckPings: boolean;
  readonly isProber: boolean;
  readonly appName?: string;
}

/** What the server says about itself (Tailscale's ServerInfo JSON). */
export interface ServerInfo {
  readonly version: number;
  readonly tokenBucketBytesPerSecond: number;
  readonly tokenBucketBytesBurst: number;
}

type Result<T> = { ok: true; value: T } | { ok: false; error: DerpProtocolError };
const bad = <T>(msg: string): Result<T> => ({ ok: false, error: new DerpProtocolError("ERR_DERP_BAD_HANDSHAKE", msg) });

/** Parses ServerKey's payload: magic ‖ 32-byte key (extra bytes are allowed for future use). */
export function parseServerKey(payload: Uint8Array): Result<Uint8Array> {
  if (payload.length < MAGIC.length + KEY_LEN) return bad(`ServerKey frame of ${payload.length} bytes, want at least ${MAGIC.length + KEY_LEN}`);
  if (!keyEqual(payload.subarray(0, MAGIC.length), MAGIC)) return bad("ServerKey frame without the DERP magic");
  return { ok: true, value: payload.slice(MAGIC.length, MAGIC.length + KEY_LEN) };
}

function seal(json: unknown, theirPublic: Uint8Array, ourPrivate: Uint8Array, random: RandomBytes): Uint8Array {
  const nonce = random(NONCE_LEN);
  const box = boxSeal(new TextEncoder().encode(JSON.stringify(json)), nonce, theirPublic, ourPrivate);
  const out = new Uint8Array(NONCE_LEN + box.length);
  out.set(nonce, 0);
  out.set(box, NONCE_LEN);
  return out;
}

/** Go's encoding/json matches field names case-insensitively; so do we. */
function lowerKeys(v: unknown): Record<string, unknown> | null {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k.toLowerCase()] = x;
  return out;
}

function openJson(boxed: Uint8Array, theirPublic: Uint8Array, ourPrivate: Uint8Array): Record<string, unknown> | null {
  if (boxed.length < NONCE_LEN) return null;
  let plain: Uint8Array | null;
  try {
    plain = boxOpen(boxed.subarray(NONCE_LEN), boxed.subarray(0, NONCE_LEN), theirPublic, ourPrivate);
  } catch {
    return null;
  }
  if (plain === null) return null;
  try {
    return lowerKeys(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain)));
  } catch {
    return null;
  }
}

/** Builds the ClientInfo frame (client key ‖ nonce ‖ box(JSON)). */
export function encodeClientInfo(info: ClientInfo, clientPublic: Uint8Array, clientPrivate: Uint8Array, serverPublic: Uint8Array, random: RandomBytes): Uint8Array {
  const json: Record<string, unknown> = { version: info.version, CanAckPings: info.canAckPings };
  if (info.meshKey) json.meshKey = Buffer.from(info.meshKey).toString("hex");
  if (info.isProber) json.IsProber = true;
  if (info.appName) json.AppName = info.appName;
  return encodeFrame(FrameType.ClientInfo, clientPublic, seal(json, serverPublic, clientPrivate, random));
}

/**
 * Opens a ClientInfo payload with the server's private key. Rejects (never throws) a
 * short or over-long frame (> 256 KiB), a box that does not open, non-JSON, and a
 * malformed mesh key.
 */
export function parseClientInfo(payload: Uint8Array, serverPrivate: Uint8Array): Result<{ clientKey: Uint8Array; info: ClientInfo }> {
  if (payload.length < KEY_LEN + NONCE_LEN) return bad(`ClientInfo of ${payload.length} bytes is too short`);
  if (payload.length > MAX_CLIENT_INFO_FRAME) return bad(`ClientInfo of ${payload.length} bytes is too long`);
  const clientKey = payload.slice(0, KEY_LEN);
  const j = openJson(payload.subarray(KEY_LEN), clientKey, serverPrivate);
  if (j === null) return bad("ClientInfo box does not open with the client's key, or is not a JSON object");
  let meshKey: Uint8Array | undefined;
  if (j.meshkey !== undefined && j.meshkey !== "") {
    if (typeof j.meshkey !== "string" || !/^[0-9a-fA-F]{64}$/.test(j.meshkey)) return bad("ClientInfo meshKey is not 64 hex digits");
    meshKey = Uint8Array.from(Buffer.from(j.meshkey, "hex"));
  }
  const info: ClientInfo = {
    ...(meshKey ? { meshKey } : {}),
    version: typeof j.version === "number" && Number.isInteger(j.version) ? j.version : 0,
    canAckPings: j.canackpings === true,
    isProber: j.isprober === true,
    ...(typeof j.appname === "string" ? { appName: j.appname.slice(0, 64) } : {}),
  };
  return { ok: true, value: { clientKey, info } };
}

/** Builds the ServerInfo frame (nonce ‖ box(JSON)) sealed to the client. */
export function encodeServerInfo(clientPublic: Uint8Array, serverPrivate: Uint8Array, random: RandomBytes): Uint8Array {
  return encodeFrame(FrameType.ServerInfo, seal({ version: PROTOCOL_VERSION }, clientPublic, serverPrivate, random));
}

/** Opens a ServerInfo payload with the client's private key. Never throws. */
export function parseServerInfo(payload: Uint8Array, clientPrivate: Uint8Array, serverPublic: Uint8Array): Result<ServerInfo> {
  if (payload.length < NONCE_LEN) return bad("short ServerInfo frame");
  if (payload.length > NONCE_LEN + MAX_INFO_LEN) return bad("long ServerInfo frame");
  const j = openJson(payload, serverPublic, clientPrivate);
  if (j === null) return bad("ServerInfo box does not open with the server's key, or is not a JSON object");
  const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);
  return { ok: true, value: { version: num(j.version), tokenBucketBytesPerSecond: num(j.tokenbucketbytespersecond), tokenBucketBytesBurst: num(j.tokenbucketbytesburst) } };
}
