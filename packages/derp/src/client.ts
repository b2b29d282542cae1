/**
 * Sans-IO DERP client core (after Tailscale's derp_client.go): reads ServerKey, sends
 * ClientInfo, reads ServerInfo, then turns frames into typed messages and answers Pings.
 * The edge feeds socket bytes to {@link DerpClient.receive} and writes
 * {@link DerpClient.takeOutput}. Malformed server frames are counted and skipped where
 * Tailscale skips them; a stream error (oversized frame, bad login) is terminal.
 */
import { x25519PublicKey } from "@lattice/crypto";
import { FrameType, KEY_LEN, MAX_CLIENT_READ_FRAME, PING_LEN, PROTOCOL_VERSION } from "./constants.js";
import { DerpProtocolError } from "./errors.js";
import {
  encodeClosePeer, encodeForwardPacket, encodeNotePreferred, encodePing, encodePong, encodeSendPacket, encodeWatchConns, FrameDecoder,
} from "./frames.js";
import { encodeClientInfo, parseServerInfo, parseServerKey, type RandomBytes, type ServerInfo } from "./handshake.js";

/** A message from the server. Byte arrays are owned by the receiver. */
export type DerpMessage =
  | { readonly kind: "serverInfo"; readonly info: ServerInfo }
  | { readonly kind: "packet"; readonly source: Uint8Array; readonly data: Uint8Array }
  | { readonly kind: "peerGone"; readonly peer: Uint8Array; readonly reason: number }
  | { readonly kind: "peerPresent"; readonly peer: Uint8Array; readonly ip16: Uint8Array | null; readonly port: number; readonly flags: number }
  | { readonly kind: "keepAlive" }
  | { readonly kind: "ping"; readonly data: Uint8Array }
  | { readonly kind: "pong"; readonly data: Uint8Array }
  | { readonly kind: "health"; readonly problem: string }
  | { readonly kind: "restarting"; readonly reconnectInMs: number; readonly tryForMs: number };

/** Client options. */
export interface DerpClientOptions {
  /** Node private key (32 bytes); the public key is the client's DERP address. */
  readonly privateKey: Uint8Array;
  readonly random: RandomBytes;
  /** Mesh key (32 bytes) for a relay-to-relay client. */
  readonly meshKey?: Uint8Array;
  readonly canAckPings?: boolean;
  readonly isProber?: boolean;
  readonly appName?: string;
}

/** Result of {@link DerpClient.receive}. */
export type ClientReceive = { readonly ok: true; readonly messages: DerpMessage[] } | { readonly ok: false; readonly error: DerpProtocolError };

/** Counters of skipped server frames. */
export interface DerpClientStats {
  malformedFrames: number;
  unknownFrames: number;
}

export class DerpClient {
  readonly publicKey: Uint8Array;
  /** The server's key once ServerKey was read. */
  serverKey: Uint8Array | null = null;
  /** True once ServerInfo was read. */
  loggedIn = false;
  readonly stats: DerpClientStats = { malformedFrames: 0, unknownFrames: 0 };
  private readonly decoder = new FrameDecoder(MAX_CLIENT_READ_FRAME);
  private out: Uint8Array[] = [];
  private failed: DerpProtocolError | null = null;

  constructor(private readonly opts: DerpClientOptions) {
    if (opts.privateKey.length !== KEY_LEN) throw new RangeError(`DERP private key must be ${KEY_LEN} bytes`);
    if (opts.meshKey && opts.meshKey.length !== KEY_LEN) throw new RangeError(`DERP mesh key must be ${KEY_LEN} bytes`);
    this.publicKey = x25519PublicKey(opts.privateKey);
  }

  /** Frames to write, in order (empties the output). */
  takeOutput(): Uint8Array[] {
    const o = this.out;
    this.out = [];
    return o;
  }

  /** Queues SendPacket(dst, packet). Throws DerpEncodeError for a packet over 64 KiB or a bad key. */
  send(dst: Uint8Array, packet: Uint8Array): void {
    this.out.push(encodeSendPacket(dst, packet));
  }

  /** Queues ForwardPacket (mesh clients only). */
  forward(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): void {
    this.out.push(encodeForwardPacket(src, dst, packet));
  }

  notePreferred(preferred: boolean): void {
    this.out.push(encodeNotePreferred(preferred));
  }

  watchConns(): void {
    this.out.push(encodeWatchConns());
  }

  closePeer(peer: Uint8Array): void {
    this.out.push(encodeClosePeer(peer));
  }

  /** Queues a Ping with 8 bytes of data. */
  ping(data: Uint8Array): void {
    this.out.push(encodePing(data));
  }

  /** Feeds bytes from the server. */
  receive(bytes: Uint8Array): ClientReceive {
    if (this.failed) return { ok: false, error: this.failed };
    const r = this.decoder.push(bytes);
    if (!r.ok) return this.fail(r.error);
    const messages: DerpMessage[] = [];
    for (const f of r.frames) {
      const p = f.payload;
      if (this.serverKey === null) {
        if (f.type !== FrameType.ServerKey) return this.fail(new DerpProtocolError("ERR_DERP_BAD_HANDSHAKE", `first frame type 0x${f.type.toString(16)}, want ServerKey`));
        const k = parseServerKey(p);
        if (!k.ok) return this.fail(k.error);
        this.serverKey = k.value;
        const info = {
          version: PROTOCOL_VERSION,
          canAckPings: this.opts.canAckPings ?? true,
          isProber: this.opts.isProber ?? false,
          ...(this.opts.meshKey ? { meshKey: this.opts.meshKey } : {}),
          ...(this.opts.appName ? { appName: this.opts.appName } : {}),
        };
        this.out.push(encodeClientInfo(info, this.publicKey, this.opts.privateKey, this.serverKey, this.opts.random));
        continue;
      }
      const m = this.decode(f.type, p);
      if (m === "fatal") return { ok: false, error: this.failed! };
      if (m) messages.push(m);
    }
    return { ok: true, messages };
  }

  private fail(e: DerpProtocolError): ClientReceive {
    this.failed = e;
    return { ok: false, error: e };
  }

  private malformed(): null {
    this.stats.malformedFrames++;
    return null;
  }

  private decode(type: number, p: Uint8Array): DerpMessage | null | "fatal" {
    switch (type) {
      case FrameType.ServerInfo: {
        const r = parseServerInfo(p, this.opts.privateKey, this.serverKey!);
        if (!r.ok) {
          this.failed = r.error;
          return "fatal";
        }
        this.loggedIn = true;
        return { kind: "serverInfo", info: r.value };
      }
      case FrameType.RecvPacket:
        if (p.length < KEY_LEN) return this.malformed();
        return { kind: "packet", source: p.slice(0, KEY_LEN), data: p.slice(KEY_LEN) };
      case FrameType.KeepAlive:
        return { kind: "keepAlive" };
      case FrameType.PeerGone:
        if (p.length < KEY_LEN) return this.malformed();
        return { kind: "peerGone", peer: p.slice(0, KEY_LEN), reason: p.length > KEY_LEN ? p[KEY_LEN]! : 0 };
      case FrameType.PeerPresent: {
        if (p.length < KEY_LEN) return this.malformed();
        const hasAddr = p.length >= KEY_LEN + 18;
        return {
          kind: "peerPresent",
          peer: p.slice(0, KEY_LEN),
          ip16: hasAddr ? p.slice(KEY_LEN, KEY_LEN + 16) : null,
          port: hasAddr ? (p[KEY_LEN + 16]! << 8) | p[KEY_LEN + 17]! : 0,
          flags: p.length >= KEY_LEN + 19 ? p[KEY_LEN + 18]! : 0,
        };
      }
      case FrameType.Ping: {
        if (p.length < PING_LEN) return this.malformed();
        const data = p.slice(0, PING_LEN);
        this.out.push(encodePong(data));
        return { kind: "ping", data };
      }
      case FrameType.Pong:
        if (p.length < PING_LEN) return this.malformed();
        return { kind: "pong", data: p.slice(0, PING_LEN) };
      case FrameType.Health:
        return { kind: "health", problem: new TextDecoder().decode(p) };
      case FrameType.Restarting: {
        if (p.length < 8) return this.malformed();
        const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
        return { kind: "restarting", reconnectInMs: v.getUint32(0), tryForMs: v.getUint32(4) };
      }
      default:
        this.stats.unknownFrames++;
        return null;
    }
  }
}
