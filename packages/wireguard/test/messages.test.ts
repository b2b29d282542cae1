import { describe, expect, test } from "vitest";
import fc from "fast-check";
import {
  buildCookieReply, buildInitiation, buildResponse, messageType, paddedSize, parseCookieReply, parseInitiation,
  parseResponse, parseTransport, writeTransportHeader, INITIATION_SIZE, RESPONSE_SIZE, COOKIE_REPLY_SIZE,
} from "../src/messages.js";
import { tai64n, tai64nAfter } from "../src/tai64n.js";

describe("message layouts (whitepaper §5.4)", () => {
  test("initiation: 148 bytes, type 1, sender LE at 4, body at 8..116, macs at 116 and 132", () => {
    const body = Uint8Array.from({ length: 108 }, (_, i) => i);
    const m = buildInitiation(0x04030201, body);
    expect(m.length).toBe(INITIATION_SIZE);
    expect([...m.subarray(0, 8)]).toEqual([1, 0, 0, 0, 1, 2, 3, 4]);
    const p = parseInitiation(m)!;
    expect(p.sender).toBe(0x04030201);
    expect(p.body).toEqual(body);
    expect(p.mac1.byteOffset - m.byteOffset).toBe(116);
    expect(p.mac2.byteOffset - m.byteOffset).toBe(132);
    expect(parseInitiation(m.subarray(0, 147))).toBeNull();
    const bad = Uint8Array.from(m); bad[2] = 1;
    expect(parseInitiation(bad)).toBeNull();
  });

  test("response: 92 bytes, sender at 4, receiver at 8, body 12..60", () => {
    const m = buildResponse(7, 0xffffffff, new Uint8Array(48).fill(9));
    expect(m.length).toBe(RESPONSE_SIZE);
    const p = parseResponse(m)!;
    expect([p.sender, p.receiver]).toEqual([7, 0xffffffff]);
    expect(p.body).toEqual(new Uint8Array(48).fill(9));
    expect(parseResponse(new Uint8Array(93))).toBeNull();
    expect(parseInitiation(m)).toBeNull();
  });

  test("cookie reply: 64 bytes, receiver at 4, nonce 8..32, cookie 32..64", () => {
    const m = buildCookieReply(5, new Uint8Array(24).fill(1), new Uint8Array(32).fill(2));
    expect(m.length).toBe(COOKIE_REPLY_SIZE);
    const p = parseCookieReply(m)!;
    expect(p.receiver).toBe(5);
    expect(p.nonce).toEqual(new Uint8Array(24).fill(1));
    expect(p.cookie).toEqual(new Uint8Array(32).fill(2));
    expect(parseCookieReply(m.subarray(0, 63))).toBeNull();
  });

  test("transport header: receiver and 64-bit LE counter; at least 32 bytes", () => {
    const m = new Uint8Array(48);
    writeTransportHeader(m, 0x11223344, 2 ** 40 + 5);
    const p = parseTransport(m)!;
    expect(p.receiver).toBe(0x11223344);
    expect(p.counter).toBe(2 ** 40 + 5);
    expect(p.ciphertext.length).toBe(32);
    expect(parseTransport(m.subarray(0, 31))).toBeNull();
    expect(messageType(new Uint8Array([4, 0, 0, 1]))).toBe(0);
  });

  test("padding: next multiple of 16 capped at the MTU (wireguard-go calculatePaddingSize)", () => {
    expect(paddedSize(0, 1420)).toBe(0);
    expect(paddedSize(1, 1420)).toBe(16);
    expect(paddedSize(16, 1420)).toBe(16);
    expect(paddedSize(1415, 1420)).toBe(1420);
    expect(paddedSize(1420, 1420)).toBe(1420);
    fc.assert(fc.property(fc.integer({ min: 0, max: 1420 }), (n) => {
      const p = paddedSize(n, 1420);
      return p >= n && p <= 1420 && (p % 16 === 0 || p === 1420) && p - n < 16;
    }));
  });
});

describe("TAI64N", () => {
  test("label = 2^62 + 10 + seconds (BE) ‖ nanoseconds (BE, low 24 bits masked)", () => {
    const t = tai64n(1_700_000_000_123);
    const dv = new DataView(t.buffer);
    expect(dv.getBigUint64(0, false)).toBe(0x400000000000000an + 1_700_000_000n);
    expect(dv.getUint32(8, false)).toBe(123_000_000 & ~0xffffff);
  });

  test("ordering is strict and follows time", () => {
    expect(tai64nAfter(tai64n(2000), tai64n(1000))).toBe(true);
    expect(tai64nAfter(tai64n(1000), tai64n(1000))).toBe(false);
    expect(tai64nAfter(tai64n(1000), tai64n(2000))).toBe(false);
  });
});
