import { describe, expect, test } from "vitest";
import { blake2sKeyed, blake2s256, x25519PublicKey } from "@lattice/crypto";
import { CookieChecker, CookieGenerator, RateLimiter, mac1Key } from "../src/cookie.js";
import { buildInitiation, parseCookieReply } from "../src/messages.js";
import { seededRandom } from "./harness.js";

const pub = x25519PublicKey(new Uint8Array(32).fill(3));

describe("mac1 / mac2 / cookie reply", () => {
  test("mac1 = BLAKE2s-128(key = BLAKE2s-256('mac1----' ‖ Spub), msg[0..116])", () => {
    const m = buildInitiation(1, new Uint8Array(108).fill(4));
    new CookieGenerator(pub).addMacs(m, 0);
    const key = blake2s256(new TextEncoder().encode("mac1----"), pub);
    expect(mac1Key(pub)).toEqual(key);
    expect(m.subarray(116, 132)).toEqual(blake2sKeyed(key, 16, m.subarray(0, 116)));
    expect(m.subarray(132, 148)).toEqual(new Uint8Array(16)); // no cookie yet
    const checker = new CookieChecker(pub, seededRandom("c"));
    expect(checker.checkMac1(m)).toBe(true);
    m[10] ^= 1;
    expect(checker.checkMac1(m)).toBe(false);
  });

  test("cookie reply round trip: mac2 valid for 120 s, then stale; bound to source address", () => {
    const checker = new CookieChecker(pub, seededRandom("c"));
    const gen = new CookieGenerator(pub);
    const src = new Uint8Array([10, 0, 0, 1, 0xca, 0x6c]);
    const m = buildInitiation(9, new Uint8Array(108));
    gen.addMacs(m, 0);
    expect(checker.checkMac2(m, src, 0)).toBe(false);
    const reply = parseCookieReply(checker.createReply(m, 9, src, 0))!;
    expect(reply.receiver).toBe(9);
    expect(gen.consumeReply(reply, 10)).toBe(true);
    gen.addMacs(m, 20);
    expect(checker.checkMac2(m, src, 30)).toBe(true);
    expect(checker.checkMac2(m, new Uint8Array([10, 0, 0, 2, 0xca, 0x6c]), 30)).toBe(false);
    // After 120 s the secret is stale: the old cookie no longer validates.
    expect(checker.checkMac2(m, src, 120_001)).toBe(false);
    // And the initiator stops sending mac2 after 120 s.
    gen.addMacs(m, 120_011);
    expect(m.subarray(132)).toEqual(new Uint8Array(16));
  });

  test("a cookie reply for a different mac1 (wrong AD) is refused", () => {
    const checker = new CookieChecker(pub, seededRandom("c"));
    const gen = new CookieGenerator(pub);
    const m1 = buildInitiation(1, new Uint8Array(108));
    const m2 = buildInitiation(2, new Uint8Array(108).fill(1));
    gen.addMacs(m1, 0);
    const reply = parseCookieReply(checker.createReply(m1, 1, new Uint8Array(6), 0))!;
    gen.addMacs(m2, 0); // last mac1 is now m2's
    expect(gen.consumeReply(reply, 0)).toBe(false);
  });
});

describe("RateLimiter (wireguard-go: 20/s, burst 5)", () => {
  test("burst of 5 then 1 per 50 ms; separate IPs independent; IPv6 keyed by /64", () => {
    const rl = new RateLimiter();
    const ip = new Uint8Array([1, 2, 3, 4]);
    const allowed = Array.from({ length: 8 }, () => rl.allow(ip, 1000)).filter(Boolean).length;
    expect(allowed).toBe(5);
    expect(rl.allow(new Uint8Array([1, 2, 3, 5]), 1000)).toBe(true);
    expect(rl.allow(ip, 1049)).toBe(false);
    expect(rl.allow(ip, 1050)).toBe(true);
    const v6a = new Uint8Array(16).fill(1);
    const v6b = Uint8Array.from(v6a); v6b[15] = 9;
    for (let i = 0; i < 5; i++) expect(rl.allow(v6a, 5000)).toBe(true);
    expect(rl.allow(v6b, 5000)).toBe(false);
  });
});
