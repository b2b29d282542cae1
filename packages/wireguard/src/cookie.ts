/**
 * mac1 / mac2 and cookie replies (whitepaper §5.4.4, §5.4.7), plus the per-source-IP
 * handshake rate limiter (wireguard-go ratelimiter: 20 per second, burst 5).
 *
 * - mac1 = MAC(HASH("mac1----" ‖ Spub_receiver), msg[..mac1]) — always checked first.
 * - cookie = MAC(secret, source address bytes ‖ port), the secret rotating every 120 s.
 * - mac2 = MAC(cookie, msg[..mac2]) — required only while the device is under load.
 * - cookie reply = XChaCha20-Poly1305(HASH("cookie--" ‖ Spub_receiver), random 24-byte
 *   nonce, cookie, AD = mac1 of the message answered).
 */
import { blake2s256, mac128, constantTimeEqual, xchachaSeal, xchachaOpen } from "@lattice/crypto";
import {
  COOKIE_REFRESH_TIME, RATELIMIT_PACKETS_BURSTABLE, RATELIMIT_PACKETS_PER_SECOND, WG_LABEL_COOKIE, WG_LABEL_MAC1,
} from "./constants.js";
import { MESSAGE_INITIATION, buildCookieReply, type CookieReplyMessage, INITIATION_MAC1_OFFSET, RESPONSE_MAC1_OFFSET } from "./messages.js";

const enc = new TextEncoder();

/** The mac1 key for a static public key: HASH("mac1----" ‖ pub). */
export function mac1Key(staticPublic: Uint8Array): Uint8Array {
  return blake2s256(enc.encode(WG_LABEL_MAC1), staticPublic);
}

/** The cookie encryption key for a static public key: HASH("cookie--" ‖ pub). */
export function cookieKey(staticPublic: Uint8Array): Uint8Array {
  return blake2s256(enc.encode(WG_LABEL_COOKIE), staticPublic);
}

/** Offset of mac1 in a handshake message (initiation or response, by length/type). */
export function mac1Offset(msg: Uint8Array): number {
  return msg[0] === MESSAGE_INITIATION ? INITIATION_MAC1_OFFSET : RESPONSE_MAC1_OFFSET;
}

/**
 * Receiver side: checks mac1/mac2 of handshake messages sent to us and makes cookie
 * replies. One per device; rebuilt when the private key changes.
 */
export class CookieChecker {
  private readonly mac1K: Uint8Array;
  private readonly cookieK: Uint8Array;
  private secret = new Uint8Array(32);
  private secretSetAt = -Infinity;

  /** `ourPublic` is this device's static public key; `random` is injected randomness. */
  constructor(ourPublic: Uint8Array, private readonly random: (n: number) => Uint8Array) {
    this.mac1K = mac1Key(ourPublic);
    this.cookieK = cookieKey(ourPublic);
  }

  /** True when mac1 of the handshake message `msg` is valid. */
  checkMac1(msg: Uint8Array): boolean {
    const off = mac1Offset(msg);
    return constantTimeEqual(mac128(this.mac1K, msg.subarray(0, off)), msg.subarray(off, off + 16));
  }

  private cookieFor(src: Uint8Array): Uint8Array {
    return mac128(this.secret, src);
  }

  /** True when mac2 is valid for the cookie of source `src` (address bytes ‖ port) under the current secret. */
  checkMac2(msg: Uint8Array, src: Uint8Array, now: number): boolean {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) return false;
    const off = mac1Offset(msg) + 16;
    const mac2 = mac128(this.cookieFor(src), msg.subarray(0, off));
    return constantTimeEqual(mac2, msg.subarray(off, off + 16));
  }

  /** Builds the cookie reply answering `msg` (whose sender index is `receiver`) from `src`. */
  createReply(msg: Uint8Array, receiver: number, src: Uint8Array, now: number): Uint8Array {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) {
      this.secret = Uint8Array.from(this.random(32));
      this.secretSetAt = now;
    }
    const off = mac1Offset(msg);
    const nonce = Uint8Array.from(this.random(24));
    const sealed = xchachaSeal(this.cookieK, nonce, this.cookieFor(src), msg.subarray(off, off + 16));
    return buildCookieReply(receiver, nonce, sealed);
  }
}

/**
 * Sender side, one per peer: fills in mac1/mac2 of our handshake messages to that peer
 * and consumes the cookie replies it sends us.
 */
export class CookieGenerator {
  private readonly mac1K: Uint8Array;
  private readonly cookieK: Uint8Array;
  private cookie: Uint8Array | null = null;
  private cookieSetAt = -Infinity;
  private lastMac1: Uint8Array | null = null;

  /** `peerPublic` is the peer's static public key. */
  constructor(peerPublic: Uint8Array) {
    this.mac1K = mac1Key(peerPublic);
    this.cookieK = cookieKey(peerPublic);
  }

  /** Writes mac1 and mac2 into the handshake message `msg` (in place). */
  addMacs(msg: Uint8Array, now: number): void {
    const off = mac1Offset(msg);
    const mac1 = mac128(this.mac1K, msg.subarray(0, off));
    msg.set(mac1, off);
    this.lastMac1 = mac1;
    if (this.cookie !== null && now - this.cookieSetAt <= COOKIE_REFRESH_TIME) {
      msg.set(mac128(this.cookie, msg.subarray(0, off + 16)), off + 16);
    } else {
      msg.fill(0, off + 16, off + 32);
    }
  }

  /** Decrypts a cookie reply for our last message; true when the cookie was accepted. */
  consumeReply(reply: CookieReplyMessage, now: number): boolean {
    if (this.lastMac1 === null) return false;
    const cookie = xchachaOpen(this.cookieK, reply.nonce, reply.cookie, this.lastMac1);
    if (cookie === null) return false;
    this.cookie = cookie;
    this.cookieSetAt = now;
    return true;
  }

  /** True when a cookie younger than 120 s is held. */
  hasFreshCookie(now: number): boolean {
    return this.cookie !== null && now - this.cookieSetAt <= COOKIE_REFRESH_TIME;
  }
}

interface Bucket { tokens: number; last: number }

/**
 * Token bucket per source IP (IPv6 keyed by /64), 20 packets/s with a burst of 5, as
 * wireguard-go's ratelimiter; idle entries are dropped after a second.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastGc = 0;
  private static readonly COST = 1000 / RATELIMIT_PACKETS_PER_SECOND;
  private static readonly MAX = RateLimiter.COST * RATELIMIT_PACKETS_BURSTABLE;

  /** True when a handshake from `ipBytes` (4 or 16 bytes) may be processed at time `now`. */
  allow(ipBytes: Uint8Array, now: number): boolean {
    if (now - this.lastGc > 1000) this.gc(now);
    const key = ipBytes.length === 16 ? Buffer.from(ipBytes.subarray(0, 8)).toString("hex") : ipBytes.join(".");
    const b = this.buckets.get(key);
    if (b === undefined) {
      this.buckets.set(key, { tokens: RateLimiter.MAX - RateLimiter.COST, last: now });
      return true;
    }
    b.tokens = Math.min(RateLimiter.MAX, b.tokens + (now - b.last));
    b.last = now;
    if (b.tokens >= RateLimiter.COST) {
      b.tokens -= RateLimiter.COST;
      return true;
    }
    return false;
  }

  private gc(now: number): void {
    this.lastGc = now;
    for (const [k, b] of this.buckets) if (now - b.last > 1000) this.buckets.delete(k);
  }
}
