/**
 * The HTTP upgrade that opens the control channel — the one definition both the client
 * (control-client's `dialControl`) and the server (coordination's `acceptControlUpgrade`)
 * use, as Tailscale keeps these in `control/controlhttp/controlhttpcommon`:
 *
 *   POST /ts2021 HTTP/1.1
 *   Upgrade: lattice-control-protocol
 *   Connection: upgrade
 *   X-Lattice-Handshake: <base64 (standard alphabet, padded) of the 101-byte initiation>
 *
 * answered by {@link CONTROL_UPGRADE_RESPONSE_HEAD} immediately followed by the 51-byte
 * response frame (controlbase.ts); from then on the socket carries records. Sans-IO: only
 * strings and bytes here, the sockets live in the client and the server.
 */
import { INITIATION_LENGTH } from "./controlbase.js";
import { NoiseError } from "./noise.js";

/** Path of the upgrade request (Tailscale: `/ts2021`). */
export const CONTROL_UPGRADE_PATH = "/ts2021";
/** Value of the `Upgrade` header naming Lattice's control protocol (compared case-insensitively). */
export const CONTROL_UPGRADE_PROTOCOL = "lattice-control-protocol";
/** Request header carrying the base64 initiation frame, as sent (HTTP header names are case-insensitive). */
export const CONTROL_HANDSHAKE_HEADER = "X-Lattice-Handshake";

/** The three upgrade constants as one object (the shape control-client has always exported). */
export const CONTROL_UPGRADE = {
  path: CONTROL_UPGRADE_PATH,
  protocol: CONTROL_UPGRADE_PROTOCOL,
  handshakeHeader: CONTROL_HANDSHAKE_HEADER,
} as const;

/** The server's complete `101` answer head (status line + headers + blank line), ASCII. */
export const CONTROL_UPGRADE_RESPONSE_HEAD =
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${CONTROL_UPGRADE_PROTOCOL}\r\nConnection: upgrade\r\n\r\n`;

/**
 * Whether a request target and `Upgrade` header address the control protocol: the path
 * (query ignored) is exactly {@link CONTROL_UPGRADE_PATH} and the header equals
 * {@link CONTROL_UPGRADE_PROTOCOL} ignoring case. The method is the server's to check.
 */
export function isControlUpgradeTarget(url: string | undefined, upgrade: string | string[] | undefined): boolean {
  const path = (url ?? "").split("?")[0];
  return path === CONTROL_UPGRADE_PATH && String(upgrade ?? "").toLowerCase() === CONTROL_UPGRADE_PROTOCOL;
}

/** The {@link CONTROL_HANDSHAKE_HEADER} value for an initiation frame (standard base64, padded). */
export function encodeHandshakeHeader(initiation: Uint8Array): string {
  return Buffer.from(initiation.buffer, initiation.byteOffset, initiation.length).toString("base64");
}

/**
 * Decodes a received {@link CONTROL_HANDSHAKE_HEADER} value into the initiation frame bytes.
 * Only the framing is checked here (present, strict base64, {@link INITIATION_LENGTH} bytes);
 * `serverAccept` checks the contents.
 *
 * @param value the header as node reports it (`req.headers["x-lattice-handshake"]`).
 * @throws NoiseError code `ERR_CONTROL_HANDSHAKE_HEADER` (missing or empty header, not
 *   base64) or `ERR_CONTROL_FRAME_SIZE` (wrong decoded size); the messages are fixed texts
 *   that never echo the input, fit to send back in a 400.
 */
export function decodeHandshakeHeader(value: string | string[] | undefined): Uint8Array {
  if (typeof value !== "string" || value.length === 0) {
    throw new NoiseError("ERR_CONTROL_HANDSHAKE_HEADER", `missing ${CONTROL_HANDSHAKE_HEADER} header`);
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) {
    throw new NoiseError("ERR_CONTROL_HANDSHAKE_HEADER", `invalid ${CONTROL_HANDSHAKE_HEADER} header (not base64)`);
  }
  const init = new Uint8Array(Buffer.from(value, "base64"));
  if (init.length !== INITIATION_LENGTH) throw new NoiseError("ERR_CONTROL_FRAME_SIZE", "wrong handshake initiation size");
  return init;
}
