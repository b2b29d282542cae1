/**
 * Property tests (fast-check) of the STUN parsers on hostile datagrams: random bytes,
 * STUN-shaped headers with garbage attributes, and valid messages with bytes flipped or
 * cut never throw; every rejection is a StunParseError with a known code.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createBindingRequest, createBindingResponse, MAGIC_COOKIE, parseBindingRequest, parseBindingResponse, parseMessage, StunParseError } from "../src/index.js";

const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));
const CODES = new Set([
  "ERR_STUN_SHORT",
  "ERR_STUN_NOT_STUN",
  "ERR_STUN_BAD_LENGTH",
  "ERR_STUN_BAD_ATTRIBUTE",
  "ERR_STUN_BAD_FINGERPRINT",
  "ERR_STUN_NOT_BINDING",
  "ERR_STUN_NO_ADDRESS",
  "ERR_STUN_BAD_ADDRESS",
]);

function check(b: Uint8Array): void {
  for (const r of [parseMessage(b), parseBindingRequest(b), parseBindingResponse(b)]) {
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(StunParseError);
      expect(CODES.has(r.error.code)).toBe(true);
    }
  }
}

/** A STUN header (type, length matching the body, magic cookie, transaction id) around garbage attributes. */
const stunShaped = fc.tuple(fc.integer({ min: 0, max: 0x3fff }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 200 })).map(([type, tid, body]) => {
  const len = body.length & ~3;
  const b = new Uint8Array(20 + len);
  const v = new DataView(b.buffer);
  v.setUint16(0, type);
  v.setUint16(2, len);
  v.setUint32(4, MAGIC_COOKIE);
  b.set(tid, 8);
  b.set(body.subarray(0, len), 20);
  return b;
});

/** Valid requests and responses with some bytes overwritten and an optional cut. */
const mutated = fc
  .tuple(fc.boolean(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.option(fc.nat()))
  .map(([req, flips, cut]) => {
    const tid = random(12);
    const b = Uint8Array.from(req ? createBindingRequest(random, { software: "fuzz" }).packet : createBindingResponse(tid, { family: 6, ip: random(16), port: 41641 }));
    for (const [i, x] of flips) b[i % b.length] = x;
    return cut === null ? b : b.subarray(0, cut % (b.length + 1));
  });

describe("STUN parsers under fuzzing (fast-check)", () => {
  it("random bytes → typed error, never a throw", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => check(b)), { numRuns: 1000 });
  });

  it("STUN-shaped headers with garbage attributes → parsed or typed error, never a throw", () => {
    fc.assert(fc.property(stunShaped, (b) => check(b)), { numRuns: 1000 });
  });

  it("valid messages with flipped or cut bytes → parsed or typed error, never a throw", () => {
    fc.assert(fc.property(mutated, (b) => check(b)), { numRuns: 1000 });
  });
});
