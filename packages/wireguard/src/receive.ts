/**
 * The receive path (wireguard-go receive.go): UDP payloads are dispatched by message
 * type; handshake messages pass mac1 (and, under load, mac2 or a cookie reply, then the
 * per-IP rate limit) before any DH; transport messages are opened in place, checked
 * against the replay window and the peer's allowed IPs, and delivered. Everything a peer
 * proves it sent goes through {@link authenticatedFrom} (roaming, counters, timers).
 * Never throws on hostile input: drops are counted by reason.
 */
import { LowOrderPointError } from "@lattice/crypto";
import type { Endpoint } from "./api.js";
import { QUEUE_HANDSHAKE_SIZE, REJECT_AFTER_TIME, REKEY_ON_RECEIVE_TIME, UNDER_LOAD_AFTER_TIME } from "./constants.js";
import type { DeviceCore } from "./core.js";
import { beginSymmetricSession, consumeInitiation, consumeResponse, createResponse } from "./handshake.js";
import { innerPacketLength } from "./inner.js";
import type { Keypair } from "./keypair.js";
import {
  MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT, TRANSPORT_HEADER_SIZE, TRANSPORT_MIN_SIZE,
  messageType, parseCookieReply, parseInitiation, parseResponse, readU32,
} from "./messages.js";
import type { Peer } from "./peer.js";
import { sendHandshakeInitiation, sendKeepalive, sendStaged } from "./send.js";

/** Handles one UDP payload received from `from`. */
export function receiveDatagram(c: DeviceCore, data: Uint8Array, from: Endpoint): void {
  c.counters.rxDatagrams++;
  c.counters.rxBytes += data.length;
  if (!c.up) {
    c.drop("deviceDown");
    return;
  }
  switch (messageType(data)) {
    case MESSAGE_TRANSPORT:
      receiveTransport(c, data, from);
      return;
    case MESSAGE_INITIATION:
    case MESSAGE_RESPONSE:
      receiveHandshake(c, data, from);
      return;
    case MESSAGE_COOKIE_REPLY:
      receiveCookieReply(c, data);
      return;
    default:
      c.drop("unknownMessageType");
  }
}

/**
 * A message from `p` passed authentication (a handshake message, or a transport message
 * that decrypted and passed the replay check): the peer roams to the endpoint it came
 * from (with its sticky source), and its counters and timers see it. The one place this
 * happens (wireguard-go: SetEndpointFromPacket + timersAnyAuthenticatedPacket*).
 */
export function authenticatedFrom(c: DeviceCore, p: Peer, data: Uint8Array, from: Endpoint, now: number): void {
  if (c.roaming) p.endpoint = from;
  p.rxBytes += data.length;
  p.timers.anyAuthenticatedPacketTraversal(now);
  p.timers.anyAuthenticatedPacketReceived();
}

function isUnderLoad(c: DeviceCore, now: number): boolean {
  if (now - c.loadWindowStart >= 1000) {
    c.loadWindowStart = now;
    c.loadWindowCount = 0;
  }
  if (++c.loadWindowCount >= QUEUE_HANDSHAKE_SIZE / 8) c.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
  if (c.underLoadHook?.()) c.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
  return now < c.underLoadUntil;
}

function receiveHandshake(c: DeviceCore, data: Uint8Array, from: Endpoint): void {
  const isInit = data[0] === MESSAGE_INITIATION;
  const init = isInit ? parseInitiation(data) : null;
  const resp = isInit ? null : parseResponse(data);
  if (init === null && resp === null) {
    c.drop(isInit ? "malformedInitiation" : "malformedResponse");
    return;
  }
  if (c.cookieChecker === null || c.staticKeys === null) {
    c.drop("noPrivateKey");
    return;
  }
  if (!c.cookieChecker.checkMac1(data)) {
    c.drop("invalidMac1");
    return;
  }
  const now = c.now();
  if (isUnderLoad(c, now)) {
    const src = from.addrPortBytes();
    if (!c.cookieChecker.checkMac2(data, src, now)) {
      const sender = init ? init.sender : resp!.sender;
      c.outDatagrams.push({ data: c.cookieChecker.createReply(data, sender, src, now), to: from });
      c.counters.txDatagrams++;
      c.counters.txBytes += 64;
      c.counters.cookieRepliesSent++;
      c.drop("cookieReplySent");
      return;
    }
    if (!c.rateLimiter.allow(from.ip, now)) {
      c.drop("rateLimited");
      return;
    }
  }
  try {
    if (init) handleInitiation(c, data, init.sender, init.body, from, now);
    else handleResponse(c, data, resp!.sender, resp!.receiver, resp!.body, from, now);
  } catch (e) {
    if (e instanceof LowOrderPointError) {
      c.drop("lowOrderKey");
      return;
    }
    throw e;
  }
}

function handleInitiation(c: DeviceCore, data: Uint8Array, sender: number, body: Uint8Array, from: Endpoint, now: number): void {
  const ctx = c.hsContext();
  const r = consumeInitiation(ctx, (pub) => c.peers.get(Buffer.from(pub).toString("hex")), sender, body, now);
  if (typeof r === "string") {
    c.drop(r);
    return;
  }
  const p = r;
  authenticatedFrom(c, p, data, from, now);
  const msg = createResponse(ctx, p, now);
  beginSymmetricSession(ctx, p, false, now);
  c.counters.sessionsDerived++;
  p.timers.sessionDerived(now);
  p.timers.anyAuthenticatedPacketTraversal(now);
  p.timers.anyAuthenticatedPacketSent();
  if (c.emit(p, msg)) c.counters.handshakeResponsesSent++;
}

function handleResponse(c: DeviceCore, data: Uint8Array, sender: number, receiver: number, body: Uint8Array, from: Endpoint, now: number): void {
  const ctx = c.hsContext();
  const r = consumeResponse(ctx, sender, receiver, body);
  if (typeof r === "string") {
    c.drop(r);
    return;
  }
  const p = r;
  authenticatedFrom(c, p, data, from, now);
  beginSymmetricSession(ctx, p, true, now);
  c.counters.sessionsDerived++;
  p.timers.sessionDerived(now);
  c.handshakeComplete(p);
  sendKeepalive(c, p);
}

function receiveCookieReply(c: DeviceCore, data: Uint8Array): void {
  const m = parseCookieReply(data);
  if (m === null) {
    c.drop("malformedCookieReply");
    return;
  }
  const entry = c.indices.lookup(m.receiver);
  if (entry === undefined || !entry.peer.cookies.consumeReply(m, c.now())) {
    c.drop("invalidCookieReply");
  }
}

/** Opens a transport message in place; returns the plaintext length or −1 (the AEAD seam). */
export function openTransport(c: DeviceCore, kp: Keypair, data: Uint8Array, counter: number | bigint): number {
  return c.aead.openInto(data.subarray(TRANSPORT_HEADER_SIZE, data.length - 16), kp.receiveKey, counter, data.subarray(TRANSPORT_HEADER_SIZE), null);
}

function receiveTransport(c: DeviceCore, data: Uint8Array, from: Endpoint): void {
  if (data.length < TRANSPORT_MIN_SIZE) {
    c.drop("malformedTransport");
    return;
  }
  const entry = c.indices.lookup(readU32(data, 4));
  const kp = entry?.keypair;
  if (entry === undefined || kp == null) {
    c.drop("unknownIndex");
    return;
  }
  const now = c.now();
  if (now - kp.created >= REJECT_AFTER_TIME) {
    c.drop("keypairExpired");
    return;
  }
  const lo = readU32(data, 8);
  const hi = readU32(data, 12);
  const counter = hi < 0x200000 ? hi * 0x1_0000_0000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
  const n = openTransport(c, kp, data, counter);
  if (n < 0) {
    c.drop("decryptFailed");
    return;
  }
  if (!kp.replay.validateHiLo(hi, lo)) {
    c.drop("replayedCounter");
    return;
  }
  const p = entry.peer;
  authenticatedFrom(c, p, data, from, now);
  const { promoted, dropped } = p.keypairs.receivedWith(kp);
  for (const d of dropped) c.indices.delete(d.localIndex);
  if (promoted) {
    c.handshakeComplete(p);
    sendStaged(c, p);
  }
  // keepKeyFreshReceiving
  const cur = p.keypairs.current;
  if (cur !== null && cur.isInitiator && now - cur.created > REKEY_ON_RECEIVE_TIME && !p.timers.sentLastMinuteHandshake) {
    p.timers.sentLastMinuteHandshake = true;
    sendHandshakeInitiation(c, p, false);
  }
  if (n === 0) {
    c.counters.keepalivesReceived++;
    return;
  }
  p.timers.dataReceived(now);
  const pkt = data.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + n);
  const len = innerPacketLength(pkt, n);
  if (len < 0) {
    c.drop("invalidInnerPacket");
    return;
  }
  const v4 = pkt[0]! >> 4 === 4;
  if (c.allowed.lookupAt(pkt, v4 ? 12 : 8, v4 ? 4 : 6) !== p) {
    c.drop("sourceNotAllowed");
    return;
  }
  const out = len === n ? pkt : pkt.subarray(0, len);
  c.outPackets.push(out);
  c.counters.tunOutPackets++;
  c.counters.tunOutBytes += len;
}
