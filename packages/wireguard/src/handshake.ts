/**
 * WireGuard's handshake messages on top of the Noise core (whitepaper §5.4.2–5.4.6;
 * wireguard-go device/noise-protocol.go): create/consume initiation and response, and
 * derive the session keypair. No timers, counters or endpoints here: the device does
 * those around these calls.
 */
import { LowOrderPointError } from "@lattice/crypto";
import { HANDSHAKE_INITIATION_RATE } from "./constants.js";
import type { IndexTable } from "./indextable.js";
import { Keypair } from "./keypair.js";
import { buildInitiation, buildResponse } from "./messages.js";
import { ikReadA, ikReadB, ikWriteA, ikWriteB, noiseKeyPair, wireguardInitialize, type NoiseKeyPair, type SymmetricState } from "./noise.js";
import type { Peer } from "./peer.js";
import type { DropReason } from "./stats.js";
import { tai64n, tai64nAfter } from "./tai64n.js";

const EMPTY = new Uint8Array(0);

/** What the handshake functions need from the device. */
export interface HandshakeContext {
  readonly staticKeys: NoiseKeyPair;
  readonly indices: IndexTable<Peer, Keypair>;
  readonly random: (n: number) => Uint8Array;
  readonly wallNow: () => number;
}

/** Frees the handshake's index (if it still belongs to the handshake) and clears it. */
export function clearHandshake(indices: IndexTable<Peer, Keypair>, p: Peer): void {
  if (p.handshake.localIndex !== 0) {
    const e = indices.lookup(p.handshake.localIndex);
    if (e && e.keypair === null) indices.delete(p.handshake.localIndex);
  }
  p.handshake.clear();
}

/**
 * Builds an initiation to `p` (macs filled in at time `now`). Throws LowOrderPointError
 * when a DH result is zero.
 */
export function createInitiation(ctx: HandshakeContext, p: Peer, now: number): Uint8Array {
  const hs = p.handshake;
  clearHandshake(ctx.indices, p);
  const e = noiseKeyPair(ctx.random(32));
  const sym = wireguardInitialize(p.publicKey);
  let body: Uint8Array;
  try {
    body = ikWriteA(sym, ctx.staticKeys, e, p.publicKey, tai64n(ctx.wallNow()), p.precomputedStaticStatic);
  } catch (err) {
    e.privateKey.fill(0);
    sym.zero();
    throw err;
  }
  hs.sym = sym;
  hs.ephemeral = e;
  hs.localIndex = ctx.indices.newIndexForHandshake(p);
  hs.state = "initiationCreated";
  const msg = buildInitiation(hs.localIndex, body);
  p.cookies.addMacs(msg, now);
  return msg;
}

/**
 * Consumes an initiation body (mac1 already checked): finds the peer by its decrypted
 * static key, applies the TAI64N replay and 20 ms flood checks, and records the
 * handshake state. Returns the peer, or why the message was refused. Throws
 * LowOrderPointError on a low-order ephemeral key.
 */
export function consumeInitiation(
  ctx: HandshakeContext, lookupPeer: (pub: Uint8Array) => Peer | undefined, sender: number, body: Uint8Array, now: number,
): Peer | DropReason {
  const sym = wireguardInitialize(ctx.staticKeys.publicKey);
  const r = consumeInitiationWith(ctx, sym, lookupPeer, sender, body, now);
  if (typeof r === "string") sym.zero(); // refused: nothing of it is kept
  return r;
}

function consumeInitiationWith(
  ctx: HandshakeContext, sym: SymmetricState, lookupPeer: (pub: Uint8Array) => Peer | undefined, sender: number, body: Uint8Array, now: number,
): Peer | DropReason {
  let peer: Peer | undefined;
  let reason: DropReason = "handshakeDecryptFailed";
  let a: ReturnType<typeof ikReadA>;
  try {
    a = ikReadA(sym, ctx.staticKeys, body, (rs) => {
    peer = lookupPeer(rs);
    if (!peer) {
      reason = "unknownPeer";
      return null;
    }
    if (!peer.canHandshake) {
      reason = "lowOrderKey";
      return null;
    }
    return peer.precomputedStaticStatic;
    });
  } catch (err) {
    sym.zero();
    throw err;
  }
  if (a === null || peer === undefined) return reason;
  const p = peer;
  const hs = p.handshake;
  if (!tai64nAfter(a.payload, hs.lastTimestamp)) return "replayedTimestamp";
  if (now - hs.lastInitiationConsumption <= HANDSHAKE_INITIATION_RATE) return "handshakeFlood";
  clearHandshake(ctx.indices, p);
  hs.lastTimestamp = Uint8Array.from(a.payload);
  hs.lastInitiationConsumption = now;
  hs.sym = sym;
  hs.remoteEphemeral = a.re;
  hs.remoteIndex = sender;
  hs.state = "initiationConsumed";
  return p;
}

/** Builds the response to the initiation just consumed from `p` (macs filled in). */
export function createResponse(ctx: HandshakeContext, p: Peer, now: number): Uint8Array {
  const hs = p.handshake;
  if (hs.state !== "initiationConsumed" || hs.sym === null || hs.remoteEphemeral === null) {
    throw new Error("createResponse: no consumed initiation");
  }
  const e = noiseKeyPair(ctx.random(32));
  let body: Uint8Array;
  try {
    body = ikWriteB(hs.sym, e, hs.remoteEphemeral, p.publicKey, p.presharedKey, EMPTY);
  } catch (err) {
    e.privateKey.fill(0);
    throw err;
  }
  hs.ephemeral = e;
  hs.localIndex = ctx.indices.newIndexForHandshake(p);
  hs.state = "responseCreated";
  const msg = buildResponse(hs.localIndex, hs.remoteIndex, body);
  p.cookies.addMacs(msg, now);
  return msg;
}

/**
 * Consumes a response addressed to our index `receiver`. Returns the peer, or why it was
 * refused; the handshake state is untouched on failure (a forged response cannot
 * disturb a pending handshake).
 */
export function consumeResponse(ctx: HandshakeContext, sender: number, receiver: number, body: Uint8Array): Peer | DropReason {
  const entry = ctx.indices.lookup(receiver);
  if (entry === undefined || entry.keypair !== null) return "unexpectedResponse";
  const p = entry.peer;
  const hs = p.handshake;
  if (hs.state !== "initiationCreated" || hs.localIndex !== receiver || hs.sym === null || hs.ephemeral === null) {
    return "unexpectedResponse";
  }
  const sym = hs.sym.clone();
  let r: ReturnType<typeof ikReadB>;
  try {
    r = ikReadB(sym, ctx.staticKeys, hs.ephemeral, body, p.presharedKey);
  } catch (e) {
    sym.zero();
    if (e instanceof LowOrderPointError) return "lowOrderKey";
    throw e;
  }
  if (r === null) {
    sym.zero();
    return "handshakeDecryptFailed";
  }
  hs.sym.zero();
  hs.sym = sym;
  hs.remoteEphemeral = r.re;
  hs.remoteIndex = sender;
  hs.state = "responseConsumed";
  return p;
}

/**
 * Derives the session from the finished handshake (Split), installs it in the peer's
 * keypairs (initiator: current; responder: next) and hands the handshake's index to it.
 */
export function beginSymmetricSession(ctx: HandshakeContext, p: Peer, isInitiator: boolean, now: number): Keypair {
  const hs = p.handshake;
  const [k1, k2] = hs.sym!.split();
  const kp = isInitiator
    ? new Keypair(k1, k2, true, now, hs.localIndex, hs.remoteIndex)
    : new Keypair(k2, k1, false, now, hs.localIndex, hs.remoteIndex);
  ctx.indices.swapForKeypair(hs.localIndex, kp);
  hs.clear(); // the index now belongs to the keypair
  for (const d of p.keypairs.install(kp)) ctx.indices.delete(d.localIndex);
  return kp;
}
