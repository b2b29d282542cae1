import { boxSeal, x25519PublicKey } from "@lattice/crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AddrPort, type DiscoMessage, DiscoEncodeError, encodeMessage, HEADER_LENGTH, looksLikeDisco, MAGIC, open,
  parseMessage, seal, senderKey,
} from "../src/index.js";

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const seq = (start: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

function keyPair(seed: number) {
  const privateKey = new Uint8Array(32).fill(seed);
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}
const alice = keyPair(1);
const bob = keyPair(2);
const NONCE = seq(0x80, 24);

// Bodies derived by hand from disco/disco.go's layouts: type, version 0, then the fields.
const VECTORS: { name: string; msg: DiscoMessage; body: string }[] = [
  { name: "ping, txid only", msg: { type: "ping", txId: seq(0xa0, 12), padding: 0 }, body: "0100 a0a1a2a3a4a5a6a7a8a9aaab" },
  {
    name: "ping with node key and 3 bytes of padding",
    msg: { type: "ping", txId: seq(0xa0, 12), nodeKey: seq(0x10, 32), padding: 3 },
    body: "0100 a0a1a2a3a4a5a6a7a8a9aaab 101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f 000000",
  },
  {
    name: "pong from an IPv4 address (v4-mapped on the wire)",
    msg: { type: "pong", txId: new Uint8Array(12).fill(0x55), src: { ip: Uint8Array.of(100, 64, 1, 2), port: 41641 } },
    body: "0200 555555555555555555555555 00000000000000000000ffff64400102 a2a9",
  },
  {
    name: "pong from an IPv6 address",
    msg: { type: "pong", txId: new Uint8Array(12).fill(0x55), src: { ip: hex("fd7a115ca1e000000000000000000001"), port: 3478 } },
    body: "0200 555555555555555555555555 fd7a115ca1e000000000000000000001 0d96",
  },
  { name: "call-me-maybe, no endpoints", msg: { type: "call-me-maybe", endpoints: [] }, body: "0300" },
  {
    name: "call-me-maybe with an IPv4 and an IPv6 endpoint",
    msg: {
      type: "call-me-maybe",
      endpoints: [{ ip: Uint8Array.of(192, 168, 1, 10), port: 41641 }, { ip: hex("20010db8000000000000000000000005"), port: 443 }],
    },
    body: "0300 00000000000000000000ffffc0a8010a a2a9 20010db8000000000000000000000005 01bb",
  },
];

describe("disco messages (layouts of Tailscale's disco.go)", () => {
  it.each(VECTORS)("$name: encodes to the hand-derived bytes and parses back", ({ msg, body }) => {
    expect(toHex(encodeMessage(msg))).toBe(toHex(hex(body)));
    expect(parseMessage(hex(body))).toEqual({ ok: true, value: msg });
  });

  it("parses as Go does: 32 trailing ping bytes are a node key, extra pong bytes are ignored, a bad call-me-maybe is empty", () => {
    const ping = parseMessage(hex("0100" + "00".repeat(12) + "ab".repeat(40)));
    expect(ping.ok && ping.value.type === "ping" && [ping.value.nodeKey?.length, ping.value.padding]).toEqual([32, 8]);
    const pong = parseMessage(hex(VECTORS[2]!.body + "ffff"));
    expect(pong.ok && pong.value).toEqual(VECTORS[2]!.msg);
    expect(parseMessage(hex("0300" + "00".repeat(17)))).toEqual({ ok: true, value: { type: "call-me-maybe", endpoints: [] } });
    expect(parseMessage(hex("0301" + "00".repeat(18)))).toEqual({ ok: true, value: { type: "call-me-maybe", endpoints: [] } });
  });

  it("short and unknown messages are typed errors", () => {
    const code = (h: string) => { const r = parseMessage(hex(h)); return r.ok ? "ok" : r.error.code; };
    expect(code("")).toBe("ERR_DISCO_SHORT");
    expect(code("01")).toBe("ERR_DISCO_SHORT");
    expect(code("0100" + "00".repeat(11))).toBe("ERR_DISCO_SHORT");
    expect(code("0200" + "00".repeat(29))).toBe("ERR_DISCO_SHORT");
    expect(code("0400" + "00".repeat(72))).toBe("ERR_DISCO_UNKNOWN_TYPE");
    expect(code("ff00")).toBe("ERR_DISCO_UNKNOWN_TYPE");
  });

  it("refuses to encode bad fields with DiscoEncodeError", () => {
    expect(() => encodeMessage({ type: "ping", txId: new Uint8Array(11), padding: 0 })).toThrow(DiscoEncodeError);
    expect(() => encodeMessage({ type: "ping", txId: new Uint8Array(12), nodeKey: new Uint8Array(31), padding: 0 })).toThrow(DiscoEncodeError);
    expect(() => encodeMessage({ type: "pong", txId: new Uint8Array(12), src: { ip: new Uint8Array(5), port: 1 } })).toThrow(DiscoEncodeError);
    expect(() => encodeMessage({ type: "call-me-maybe", endpoints: [{ ip: new Uint8Array(4), port: 70000 }] })).toThrow(/endpoints\[0\] port/);
  });
});

describe("disco packets", () => {
  it("a sealed packet is magic ‖ sender key ‖ nonce ‖ crypto_box(body), and opens to the message", () => {
    const v = VECTORS[1]!;
    const expected = new Uint8Array([...hex("5453f09f92ac"), ...alice.publicKey, ...NONCE, ...boxSeal(hex(v.body), NONCE, bob.publicKey, alice.privateKey)]);
    const pkt = seal(v.msg, alice, bob.publicKey, NONCE);
    expect(toHex(pkt)).toBe(toHex(expected));
    expect(toHex(MAGIC)).toBe(toHex(new TextEncoder().encode("TS💬")));
    expect(pkt.length).toBe(HEADER_LENGTH + hex(v.body).length + 16);
    expect(looksLikeDisco(pkt)).toBe(true);
    expect(toHex(senderKey(pkt)!)).toBe(toHex(alice.publicKey));
    expect(open(pkt, bob.privateKey, alice.publicKey)).toEqual({ ok: true, value: { message: v.msg, sender: alice.publicKey } });
  });

  it("tampering, wrong keys, a wrong sender and non-disco bytes are typed errors", () => {
    const pkt = seal(VECTORS[0]!.msg, alice, bob.publicKey, NONCE);
    const code = (b: Uint8Array, priv = bob.privateKey, peer = alice.publicKey) => { const r = open(b, priv, peer); return r.ok ? "ok" : r.error.code; };
    const flipped = pkt.slice(); flipped[pkt.length - 1]! ^= 1;
    expect(code(flipped)).toBe("ERR_DISCO_AUTH");
    const nonceFlipped = pkt.slice(); nonceFlipped[40]! ^= 1;
    expect(code(nonceFlipped)).toBe("ERR_DISCO_AUTH");
    expect(code(pkt, keyPair(3).privateKey)).toBe("ERR_DISCO_AUTH");
    expect(code(pkt, bob.privateKey, keyPair(3).publicKey)).toBe("ERR_DISCO_SENDER_MISMATCH");
    expect(code(pkt.subarray(0, HEADER_LENGTH + 15))).toBe("ERR_DISCO_AUTH");
    expect(code(pkt.subarray(0, HEADER_LENGTH - 1))).toBe("ERR_DISCO_NOT_DISCO");
    const noMagic = pkt.slice(); noMagic[0] = 0x55;
    expect(code(noMagic)).toBe("ERR_DISCO_NOT_DISCO");
    expect(looksLikeDisco(noMagic)).toBe(false);
    // A box that opens but carries an unknown type.
    const odd = new Uint8Array([...MAGIC, ...alice.publicKey, ...NONCE, ...boxSeal(hex("0900"), NONCE, bob.publicKey, alice.privateKey)]);
    expect(code(odd)).toBe("ERR_DISCO_UNKNOWN_TYPE");
  });

  it("seal rejects bad key and nonce lengths", () => {
    expect(() => seal(VECTORS[0]!.msg, alice, bob.publicKey, new Uint8Array(23))).toThrow(DiscoEncodeError);
    expect(() => seal(VECTORS[0]!.msg, { ...alice, privateKey: new Uint8Array(31) }, bob.publicKey, NONCE)).toThrow(DiscoEncodeError);
  });
});

const addrPortArb: fc.Arbitrary<AddrPort> = fc.record({
  ip: fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => !(b.subarray(0, 12).every((x, i) => x === (i < 10 ? 0 : 0xff))))),
  port: fc.integer({ min: 0, max: 65535 }),
});
const messageArb: fc.Arbitrary<DiscoMessage> = fc.oneof(
  fc.record({ type: fc.constant("ping" as const), txId: fc.uint8Array({ minLength: 12, maxLength: 12 }), nodeKey: fc.uint8Array({ minLength: 32, maxLength: 32 }), padding: fc.integer({ min: 0, max: 300 }) }),
  fc.record({ type: fc.constant("ping" as const), txId: fc.uint8Array({ minLength: 12, maxLength: 12 }), padding: fc.integer({ min: 0, max: 31 }) }),
  fc.record({ type: fc.constant("pong" as const), txId: fc.uint8Array({ minLength: 12, maxLength: 12 }), src: addrPortArb }),
  fc.record({ type: fc.constant("call-me-maybe" as const), endpoints: fc.array(addrPortArb, { maxLength: 8 }) }),
);

describe("disco properties", () => {
  it("seal → open round-trips every message", () => {
    fc.assert(
      fc.property(messageArb, fc.uint8Array({ minLength: 24, maxLength: 24 }), (msg, nonce) => {
        expect(open(seal(msg, alice, bob.publicKey, nonce), bob.privateKey, alice.publicKey)).toEqual({ ok: true, value: { message: msg, sender: alice.publicKey } });
      }),
      { numRuns: 300 },
    );
  });

  it("open and parseMessage never throw on arbitrary bytes (with and without the magic)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, withHeader) => {
        const b = withHeader ? new Uint8Array([...MAGIC, ...alice.publicKey, ...bytes]) : bytes;
        const r = open(b, bob.privateKey, alice.publicKey);
        expect(r.ok).toBe(false);
        const m = parseMessage(bytes);
        if (!m.ok) expect(m.error.code).toMatch(/^ERR_DISCO_/);
        looksLikeDisco(b);
      }),
      { numRuns: 2000 },
    );
  });

  it("boxes holding arbitrary plaintext open to a message or a typed error, never a throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (plain) => {
        const b = new Uint8Array([...MAGIC, ...alice.publicKey, ...NONCE, ...boxSeal(plain, NONCE, bob.publicKey, alice.privateKey)]);
        const r = open(b, bob.privateKey, alice.publicKey);
        if (!r.ok) expect(r.error.code).toMatch(/^ERR_DISCO_(SHORT|UNKNOWN_TYPE)$/);
      }),
      { numRuns: 1000 },
    );
  });
});
