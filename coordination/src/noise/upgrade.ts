/**
 * Server side of the control channel's HTTP upgrade (as Tailscale's ts2021):
 *
 *   POST /ts2021 HTTP/1.1
 *   Upgrade: lattice-control-protocol
 *   Connection: upgrade
 *   X-Lattice-Handshake: <base64 of the 101-byte Noise IK initiation frame>
 *
 * answered by `101 Switching Protocols` immediately followed by the 51-byte handshake
 * response frame; from then on the socket carries encrypted records (see
 * @lattice/controlbase), with HTTP/2 inside. Anything malformed gets `400` with a
 * one-line message and the socket is closed; nothing is thrown. The path, header names and
 * the `101` head are @lattice/controlbase's (defined once for client and server); this file
 * is the server half, as Tailscale's `controlhttpserver`.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import {
  type NoiseKeyPair,
  NoiseDuplex,
  NoiseError,
  CONTROL_HANDSHAKE_HEADER,
  CONTROL_PROTOCOL_VERSION,
  CONTROL_UPGRADE_RESPONSE_HEAD,
  decodeHandshakeHeader,
  isControlUpgradeTarget,
  noiseKeyPair,
  serverAccept,
} from "@lattice/controlbase";
import { refuseSocket } from "../http/refuse.js";

/** The handshake header's key in node's `req.headers` (which lower-cases names). */
const HANDSHAKE_HEADER_KEY = CONTROL_HANDSHAKE_HEADER.toLowerCase();

/** Counters of hostile or broken input, for metrics and tests. */
export interface NoiseCounters {
  /** Upgrade requests refused before or during the handshake. */
  handshakeFailures: number;
  /** Established channels killed by a malformed or unauthenticated record. */
  malformedFrames: number;
  /** Successful handshakes. */
  handshakes: number;
}

/** Fresh zeroed counters. */
export function newNoiseCounters(): NoiseCounters {
  return { handshakeFailures: 0, malformedFrames: 0, handshakes: 0 };
}

/** Options of {@link acceptControlUpgrade}. */
export interface ControlUpgradeOptions {
  /** The server's Noise static key (persistent; its public half is served at /key). */
  serverKey: NoiseKeyPair;
  /** Randomness for the ephemeral key. */
  random: (n: number) => Uint8Array;
  counters: NoiseCounters;
  /** Protocol versions accepted (default: the current one). */
  supportedVersions?: readonly number[];
  /** How long a refused peer may take to read the error answer before the socket is closed, ms (default 5000). */
  refuseGraceMs?: number;
}

/** Whether an upgrade request is addressed to the control protocol (path + Upgrade header). */
export function isControlUpgrade(req: IncomingMessage): boolean {
  return isControlUpgradeTarget(req.url, req.headers.upgrade);
}

/**
 * Completes the upgrade: checks the request, runs the responder side of the handshake,
 * writes `101` + response frame and returns the plaintext stream, whose
 * `transport.peerStatic` is the node's authenticated machine key. Returns null (after
 * answering 400 and counting) when the request or handshake is bad.
 */
export function acceptControlUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  opts: ControlUpgradeOptions,
): NoiseDuplex | null {
  socket.on("error", () => {}); // errors end the socket; never crash the process
  const fail = (status: number, message: string): null => {
    opts.counters.handshakeFailures++;
    refuseSocket(socket, status, status === 405 ? "Method Not Allowed" : "Bad Request", message, opts.refuseGraceMs ?? 5000);
    return null;
  };
  if (req.method !== "POST") return fail(405, "control upgrade must be POST");
  let init: Uint8Array;
  try {
    init = decodeHandshakeHeader(req.headers[HANDSHAKE_HEADER_KEY]);
  } catch (e) {
    // decodeHandshakeHeader's messages are fixed texts naming the header, never the input.
    return fail(400, e instanceof NoiseError ? e.message : "malformed handshake header");
  }
  let accepted;
  try {
    accepted = serverAccept({
      serverKey: opts.serverKey,
      ephemeral: noiseKeyPair(opts.random(32)),
      initiation: init,
      supportedVersions: opts.supportedVersions ?? [CONTROL_PROTOCOL_VERSION],
    });
  } catch (e) {
    // Fixed texts only: never echo attacker-controlled input.
    const code = e instanceof NoiseError ? e.code : "ERR_NOISE";
    const text =
      code === "ERR_CONTROL_VERSION" ? "unsupported control protocol version"
      : code === "ERR_NOISE_DECRYPT" || code === "ERR_NOISE_DH" ? "handshake failed (wrong server key?)"
      : "malformed handshake initiation";
    return fail(400, text);
  }
  opts.counters.handshakes++;
  socket.write(CONTROL_UPGRADE_RESPONSE_HEAD);
  socket.write(accepted.response);
  return new NoiseDuplex(socket, accepted.transport, {
    initial: head.length > 0 ? new Uint8Array(head) : undefined,
    onProtocolError: () => {
      opts.counters.malformedFrames++;
    },
  });
}
