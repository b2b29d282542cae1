import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Attr, createBindingRequest, createBindingResponse, crc32, looksLikeStun, parseBindingRequest, parseBindingResponse,
  parseMessage, StunClass, StunParseError,
} from "../src/index.js";

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

// RFC 5769 §2.1-2.3 test vectors.
const SAMPLE_REQUEST = hex(`
  000100582112a442b7e7a701bc34d686fa87dfae
  802200105354554e207465737420636c69656e74
  002400046e0001ff
  80290008932ff9b151263b36
  000600096576746a3a683676592020 20
  000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
  80280004e57a3bcf`);
const SAMPLE_V4_RESPONSE = hex(`
  0101003c2112a442b7e7a701bc34d686fa87dfae
  8022000b7465737420766563746f7220
  002000080001a147e112a643
  000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7
  80280004c07d4c96`);
const SAMPLE_V6_RESPONSE = hex(`
  010100482112a442b7e7a701bc34d686fa87dfae
  8022000b7465737420766563746f7220
  002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9
  00080014a382954e4be67bf11784c97c8292c275bfe3ed41
  80280004c8fb0b4c`);
const TXID = hex("b7e7a701bc34d686fa87dfae");
const PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt";

/** RFC 8489 §14.5 check of the vectors' MESSAGE-INTEGRITY (proves we walk attributes at the right offsets). */
function integrityOk(msg: Uint8Array): boolean {
  const p = parseMessage(msg);
  if (!p.ok) return false;
  const mi = p.value.attributes.find((a) => a.type === Attr.MessageIntegrity)!;
  const off = mi.value.byteOffset - msg.byteOffset - 4;
  const copy = Uint8Array.from(msg.subarray(0, off));
  const len = off + 24 - 20;
  copy[2] = len >> 8;
  copy[3] = len & 0xff;
  const mac = createHmac("sha1", PASSWORD).update(copy).digest();
  return Buffer.from(mac).equals(Buffer.from(mi.value));
}

describe("RFC 5769 test vectors", () => {
  it("parses the sample request: Binding request, txid, FINGERPRINT verified, MESSAGE-INTEGRITY at the right offset", () => {
    const p = parseMessage(SAMPLE_REQUEST);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.value.class).toBe(StunClass.Request);
    expect(p.value.method).toBe(1);
    expect(Buffer.from(p.value.transactionId).equals(Buffer.from(TXID))).toBe(true);
    expect(p.value.hasFingerprint).toBe(true);
    expect(p.value.attributes.map((a) => a.type)).toEqual([0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]);
    expect(new TextDecoder().decode(p.value.attributes[3]!.value)).toBe("evtj:h6vY");
    expect(integrityOk(SAMPLE_REQUEST)).toBe(true);
    const req = parseBindingRequest(SAMPLE_REQUEST);
    expect(req.ok && Buffer.from(req.value.transactionId).equals(Buffer.from(TXID))).toBe(true);
  });

  it("parses the IPv4 response: XOR-MAPPED-ADDRESS is 192.0.2.1:32853", () => {
    const r = parseBindingResponse(SAMPLE_V4_RESPONSE);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.mapped).toEqual({ family: 4, ip: Uint8Array.from([192, 0, 2, 1]), port: 32853 });
    expect(integrityOk(SAMPLE_V4_RESPONSE)).toBe(true);
  });

  it("returns a plain Uint8Array address even when the datagram is a Node Buffer (as dgram delivers)", () => {
    const r = parseBindingResponse(Buffer.from(SAMPLE_V4_RESPONSE));
    expect(r.ok && Buffer.isBuffer(r.value.mapped.ip)).toBe(false);
    expect(r.ok && r.value.mapped).toEqual({ family: 4, ip: Uint8Array.from([192, 0, 2, 1]), port: 32853 });
  });

  it("parses the IPv6 response: XOR-MAPPED-ADDRESS is [2001:db8:1234:5678:11:2233:4455:6677]:32853", () => {
    const r = parseBindingResponse(SAMPLE_V6_RESPONSE);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.mapped.family).toBe(6);
    expect(Buffer.from(r.value.mapped.ip).toString("hex")).toBe("20010db8123456780011223344556677");
    expect(r.value.mapped.port).toBe(32853);
  });

  it("encodes the same XOR-MAPPED-ADDRESS bytes as the vectors", () => {
    const v4 = createBindingResponse(TXID, { family: 4, ip: Uint8Array.from([192, 0, 2, 1]), port: 32853 }, { fingerprint: false });
    expect(Buffer.from(v4.subarray(20)).toString("hex")).toBe("002000080001a147e112a643");
    const v6 = createBindingResponse(TXID, { family: 6, ip: hex("20010db8123456780011223344556677"), port: 32853 }, { fingerprint: false });
    expect(Buffer.from(v6.subarray(20)).toString("hex")).toBe("002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9");
  });

  it("rejects a vector with one flipped bit under the FINGERPRINT (typed error)", () => {
    const bad = Uint8Array.from(SAMPLE_V4_RESPONSE);
    bad[25] ^= 1;
    const r = parseMessage(bad);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("ERR_STUN_BAD_FINGERPRINT");
  });
});

describe("binding round trip", () => {
  it("request from injected randomness → server response → client reads its address", () => {
    let n = 0;
    const random = (len: number): Uint8Array => Uint8Array.from({ length: len }, () => n++);
    const { transactionId, packet } = createBindingRequest(random, { software: "lattice" });
    expect(Buffer.from(transactionId).toString("hex")).toBe("000102030405060708090a0b");
    expect(looksLikeStun(packet)).toBe(true);
    const req = parseBindingRequest(packet);
    expect(req.ok).toBe(true);
    if (!req.ok) return;
    const resp = createBindingResponse(req.value.transactionId, { family: 4, ip: Uint8Array.from([10, 1, 2, 3]), port: 41641 });
    const r = parseBindingResponse(resp);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.mapped).toEqual({ family: 4, ip: Uint8Array.from([10, 1, 2, 3]), port: 41641 });
    expect(Buffer.from(r.value.transactionId).equals(Buffer.from(transactionId))).toBe(true);
  });

  it("a request is not a response and vice versa (ERR_STUN_NOT_BINDING)", () => {
    const { packet } = createBindingRequest(() => new Uint8Array(12));
    const r = parseBindingResponse(packet);
    expect(!r.ok && r.error.code).toBe("ERR_STUN_NOT_BINDING");
    const q = parseBindingRequest(SAMPLE_V4_RESPONSE);
    expect(!q.ok && q.error.code).toBe("ERR_STUN_NOT_BINDING");
  });

  it("crc32 matches the standard check value", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
  });
});

describe("hostile input (fast-check)", () => {
  const parsers = [parseMessage, parseBindingRequest, parseBindingResponse];

  it("never throws on arbitrary bytes and returns a typed StunParseError when rejecting", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        for (const p of parsers) {
          const r = p(b);
          if (!r.ok) expect(r.error).toBeInstanceOf(StunParseError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws on mutated valid messages (header kept, attributes corrupted)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(SAMPLE_REQUEST, SAMPLE_V4_RESPONSE, SAMPLE_V6_RESPONSE),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat({ max: 120 }),
        (base, muts, cut) => {
          const b = Uint8Array.from(base);
          for (const [i, v] of muts) b[20 + (i % (b.length - 20))] = v;
          const t = b.subarray(0, Math.max(0, b.length - cut));
          for (const p of parsers) {
            const r = p(t);
            if (!r.ok) expect(r.error).toBeInstanceOf(StunParseError);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("round-trips any address through response encode/parse", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.boolean(), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 65535 }), (txid, v4, ipb, port) => {
        const ip = v4 ? ipb.subarray(0, 4) : ipb;
        const r = parseBindingResponse(createBindingResponse(txid, { family: v4 ? 4 : 6, ip, port }));
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.value.mapped).toEqual({ family: v4 ? 4 : 6, ip: Uint8Array.from(ip), port });
      }),
    );
  });
});
