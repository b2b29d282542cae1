/**
 * The three things Lattice needs from ssh2's server that its public API lacks, isolated
 * here so an ssh2 upgrade breaks one file (pinned by daemon/test/ssh/server.test.ts):
 * - an auth banner at any time during user authentication (RFC 4252 §5.4, check mode and
 *   denial reasons), written with the protocol's own packet writer;
 * - a DISCONNECT carrying a description (ssh2's `disconnect()` sends an empty one), so
 *   clients that hide banners (net-ssh, paramiko) still fail with the reason;
 * - opening an `auth-agent@openssh.com` channel back to the client (OpenSSH PROTOCOL §2.1
 *   agent forwarding): ssh2's Protocol has `openssh_authAgent()`, and its connection
 *   handler turns any CHANNEL_OPEN_CONFIRMATION for a registered callback into a Channel —
 *   we register the callback exactly as its private `openChannel()` does for x11.
 */
import { createRequire } from "node:module";
import type { Connection, ServerChannel } from "ssh2";

const require = createRequire(import.meta.url);
// ssh2 has no "exports" map: deep requires of its lib files are stable paths in 1.x.
const utils = require("ssh2/lib/protocol/utils.js") as {
  sendPacket(proto: unknown, packet: Buffer, bypass?: boolean): void;
  writeUInt32BE(buf: Buffer, value: number, offset: number): number;
};
const chan = require("ssh2/lib/Channel.js") as { MAX_WINDOW: number; PACKET_SIZE: number };

interface PacketWriter {
  allocStart: number;
  allocStartKEX: number;
  alloc(len: number, forceNormal?: boolean): Buffer;
  finalize(packet: Buffer, forceNormal?: boolean): Buffer;
}
interface ProtocolInternals {
  _packetRW: { write: PacketWriter };
  openssh_authAgent(chan: number, initWindow: number, maxPacket: number): void;
}
interface ConnectionInternals {
  _protocol?: ProtocolInternals;
  _chanMgr?: { add(v: unknown): number };
  _sock?: { writable?: boolean; destroyed?: boolean };
}

const MSG_DISCONNECT = 1;
const MSG_USERAUTH_BANNER = 53;

function proto(conn: Connection): ProtocolInternals {
  const p = (conn as unknown as ConnectionInternals)._protocol;
  if (!p || !p._packetRW || typeof p.openssh_authAgent !== "function") {
    throw new Error("ssh2 internals changed: Connection._protocol is not the expected Protocol");
  }
  return p;
}

function writable(conn: Connection): boolean {
  const s = (conn as unknown as ConnectionInternals)._sock;
  return !!s && s.writable !== false && !s.destroyed;
}

/** Sends SSH_MSG_USERAUTH_BANNER with `text` (CRLF-terminated). Only valid before auth succeeds. */
export function sendAuthBanner(conn: Connection, text: string): void {
  if (!writable(conn)) return;
  const p = proto(conn);
  const msg = text.endsWith("\n") ? text.replace(/\r?\n/g, "\r\n") : text.replace(/\r?\n/g, "\r\n") + "\r\n";
  const len = Buffer.byteLength(msg);
  const w = p._packetRW.write;
  let off = w.allocStart;
  const packet = w.alloc(1 + 4 + len + 4);
  packet[off] = MSG_USERAUTH_BANNER;
  utils.writeUInt32BE(packet, len, ++off);
  packet.write(msg, (off += 4), len, "utf8");
  utils.writeUInt32BE(packet, 0, off + len);
  utils.sendPacket(p, w.finalize(packet));
}

/** RFC 4253 §11.1 disconnect reason codes used here. */
export const DisconnectReason = { BY_APPLICATION: 11, NO_MORE_AUTH_METHODS_AVAILABLE: 14, PROTOCOL_ERROR: 2 } as const;

/** Sends SSH_MSG_DISCONNECT with a description (shown by OpenSSH as "Received disconnect … : text"). */
export function sendDisconnect(conn: Connection, reason: number, description: string): void {
  if (!writable(conn)) return;
  const p = proto(conn);
  const desc = description.slice(0, 1024);
  const len = Buffer.byteLength(desc);
  const w = p._packetRW.write;
  let off = w.allocStartKEX;
  const packet = w.alloc(1 + 4 + 4 + len + 4, true);
  packet[off] = MSG_DISCONNECT;
  utils.writeUInt32BE(packet, reason, ++off);
  utils.writeUInt32BE(packet, len, (off += 4));
  packet.write(desc, (off += 4), len, "utf8");
  utils.writeUInt32BE(packet, 0, off + len);
  utils.sendPacket(p, w.finalize(packet, true), true);
}

/**
 * Opens an `auth-agent@openssh.com` channel to the client; `cb` gets the channel, or an
 * error when the client refuses (no agent) or no channel id is free.
 */
export function openAgentChannel(conn: Connection, cb: (err: Error | undefined, ch?: ServerChannel) => void): void {
  const c = conn as unknown as ConnectionInternals;
  const p = proto(conn);
  if (!c._chanMgr) throw new Error("ssh2 internals changed: Connection._chanMgr missing");
  const wrapper = (err: Error | undefined, stream?: ServerChannel): void => cb(err, stream);
  (wrapper as unknown as { type: string }).type = "auth-agent@openssh.com";
  const local = c._chanMgr.add(wrapper);
  if (local === -1) {
    cb(new Error("no free channels"));
    return;
  }
  p.openssh_authAgent(local, chan.MAX_WINDOW, chan.PACKET_SIZE);
}
