/**
 * The send path (wireguard-go send.go): inner packets from the TUN are routed by allowed
 * IPs to a peer, staged, and sealed into transport messages once the peer has a usable
 * session; otherwise a handshake initiation goes out (rate-limited to one per
 * REKEY_TIMEOUT). Keepalives are empty staged packets.
 */
import { LowOrderPointError } from "@lattice/crypto";
import { MAX_SAFE_COUNTER, QUEUE_STAGED_SIZE, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT } from "./constants.js";
import type { DeviceCore } from "./core.js";
import { createInitiation } from "./handshake.js";
import { destinationOf } from "./inner.js";
import type { Keypair } from "./keypair.js";
import { TRANSPORT_HEADER_SIZE, paddedSize, writeTransportHeader } from "./messages.js";
import type { Peer } from "./peer.js";

const EMPTY = new Uint8Array(0);

/** Routes and stages one inner packet; returns its peer, or null (dropped and counted). */
export function stage(c: DeviceCore, packet: Uint8Array): Peer | null {
  if (!c.up) {
    c.drop("deviceDown");
    return null;
  }
  if (c.staticKeys === null) {
    c.drop("noPrivateKey");
    return null;
  }
  const dst = destinationOf(packet);
  if (dst === null) {
    c.drop("invalidInnerPacket");
    return null;
  }
  const p = c.allowed.lookupAt(packet, dst.offset, dst.family);
  if (p === undefined) {
    c.drop("noRoute");
    return null;
  }
  c.counters.tunInPackets++;
  c.counters.tunInBytes += packet.length;
  if (p.staged.length >= QUEUE_STAGED_SIZE) {
    p.staged.shift();
    c.drop("stagedQueueFull");
  }
  p.staged.push(packet);
  return p;
}

/** Stages a batch; each peer's packets are then flushed once. */
export function sendPackets(c: DeviceCore, batch: readonly Uint8Array[]): void {
  if (batch.length === 1) {
    const p = stage(c, batch[0]!);
    if (p) sendStaged(c, p);
    return;
  }
  const touched = new Set<Peer>();
  for (const pkt of batch) {
    const p = stage(c, pkt);
    if (p) touched.add(p);
  }
  for (const p of touched) sendStaged(c, p);
}

/** Sends a keepalive (an empty transport message), or starts a handshake for it. */
export function sendKeepalive(c: DeviceCore, p: Peer): void {
  if (p.staged.length === 0) p.staged.push(EMPTY);
  sendStaged(c, p);
}

/** Seals the peer's staged packets on its current session, or initiates a handshake. */
export function sendStaged(c: DeviceCore, p: Peer): void {
  if (p.staged.length === 0 || !c.up) return;
  const now = c.now();
  const kp = p.keypairs.current;
  if (!c.usableForSending(kp, now)) {
    sendHandshakeInitiation(c, p, false);
    return;
  }
  const batch = p.staged;
  p.staged = [];
  let i = 0;
  for (; i < batch.length; i++) {
    if (kp.sendNonce >= MAX_SAFE_COUNTER) break;
    const pkt = batch[i]!;
    const msg = sealTransport(c, kp, pkt);
    if (!c.emit(p, msg)) continue;
    p.timers.anyAuthenticatedPacketTraversal(now);
    p.timers.anyAuthenticatedPacketSent();
    if (pkt.length !== 0) p.timers.dataSent(now);
    else c.counters.keepalivesSent++;
  }
  if (i < batch.length) {
    p.staged = batch.slice(i);
    sendHandshakeInitiation(c, p, false);
    return;
  }
  // keepKeyFreshSending
  if (kp.isInitiator && (kp.sendNonce > REKEY_AFTER_MESSAGES || now - kp.created > REKEY_AFTER_TIME)) {
    sendHandshakeInitiation(c, p, false);
  }
}

/** Seals one inner packet into a complete transport message (the AEAD seam). */
export function sealTransport(c: DeviceCore, kp: Keypair, pkt: Uint8Array): Uint8Array {
  const padded = paddedSize(pkt.length, c.mtu);
  // Uninitialised (pooled) memory: every byte is written below (header, packet, zero padding, ciphertext).
  const out: Uint8Array = Buffer.allocUnsafe(TRANSPORT_HEADER_SIZE + padded + 16);
  out.set(pkt, TRANSPORT_HEADER_SIZE);
  if (padded > pkt.length) out.fill(0, TRANSPORT_HEADER_SIZE + pkt.length, TRANSPORT_HEADER_SIZE + padded);
  const nonce = kp.sendNonce++;
  writeTransportHeader(out, kp.remoteIndex, nonce);
  c.aead.sealInto(out.subarray(TRANSPORT_HEADER_SIZE), kp.sendKey, nonce, out.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + padded), null);
  return out;
}

/** Sends a handshake initiation (at most one per REKEY_TIMEOUT; a retry keeps the attempt count). */
export function sendHandshakeInitiation(c: DeviceCore, p: Peer, isRetry: boolean): void {
  if (!isRetry) p.timers.handshakeAttempts = 0;
  const now = c.now();
  if (now - p.handshake.lastSentHandshake < REKEY_TIMEOUT) {
    // Rate-limited (one initiation per REKEY_TIMEOUT): the handshake is still wanted, so
    // make sure a retry is due when the limit ends (else staged packets would wait for
    // an unrelated event).
    if (!p.timers.pending("retransmitHandshake")) {
      p.timers.mod("retransmitHandshake", p.handshake.lastSentHandshake + REKEY_TIMEOUT + c.jitter());
    }
    return;
  }
  if (c.staticKeys === null || !p.canHandshake) {
    c.drop(c.staticKeys === null ? "noPrivateKey" : "lowOrderKey");
    return;
  }
  p.handshake.lastSentHandshake = now;
  let msg: Uint8Array;
  try {
    msg = createInitiation(c.hsContext(), p, now);
  } catch (e) {
    if (e instanceof LowOrderPointError) {
      c.drop("lowOrderKey");
      return;
    }
    throw e;
  }
  p.timers.anyAuthenticatedPacketTraversal(now);
  p.timers.anyAuthenticatedPacketSent();
  if (c.emit(p, msg)) c.counters.handshakeInitiationsSent++;
  p.timers.handshakeInitiated(now);
}

/**
 * Sends a new initiation now, regardless of when the last one went out: for a handshake
 * in flight that a configuration change made pointless (new endpoint, new port).
 */
export function restartHandshake(c: DeviceCore, p: Peer): void {
  p.handshake.lastSentHandshake = -Infinity;
  sendHandshakeInitiation(c, p, false);
}
