import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { Pair } from "./harness.js";

// Valid messages of every type, captured from a real exchange (with a cookie reply).
function corpus(): { pair: Pair; messages: Uint8Array[] } {
  const pair = new Pair({ seed: "fuzz" });
  pair.b.dev.setUnderLoadUntil(pair.clock.t + 10_000);
  pair.send("a");
  pair.pump(); // initiation → cookie reply
  pair.advance(6000); // retransmission with mac2 → response → data
  pair.send("b");
  pair.pump();
  pair.advance(11_000); // keepalive
  const messages = pair.log.map((l) => l.data);
  expect(new Set(messages.map((m) => m[0]))).toEqual(new Set([1, 2, 3, 4]));
  return { pair, messages };
}

describe("receiveDatagram never throws on hostile input", () => {
  test("random bytes (property)", () => {
    const { pair } = corpus();
    const from = pair.a.ep;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.integer({ min: 0, max: 5 }),
        fc.boolean(),
        (bytes, type, header) => {
          const b = Uint8Array.from(bytes);
          if (header && b.length >= 4) { b[0] = type; b[1] = b[2] = b[3] = 0; }
          expect(() => pair.b.dev.receiveDatagram(b, from)).not.toThrow();
          expect(() => pair.a.dev.receiveDatagram(Uint8Array.from(b), pair.b.ep)).not.toThrow();
        },
      ),
      { numRuns: 3000 },
    );
  });

  test("mutated valid messages (property), and the real session survives", () => {
    const { pair, messages } = corpus();
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: messages.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat({ max: 200 })),
        fc.boolean(),
        (i, flips, truncate, toA) => {
          const m = Uint8Array.from(messages[i]);
          for (const [pos, x] of flips) m[pos % m.length] ^= x;
          const data = truncate === null ? m : m.subarray(0, truncate % (m.length + 1));
          const dev = toA ? pair.a.dev : pair.b.dev;
          expect(() => dev.receiveDatagram(data, toA ? pair.b.ep : pair.a.ep)).not.toThrow();
          expect(() => dev.tick()).not.toThrow();
        },
      ),
      { numRuns: 3000 },
    );
    // Drain whatever the fuzzing provoked, then check the tunnel still works.
    pair.a.dev.takeDatagrams(); pair.b.dev.takeDatagrams();
    pair.a.dev.takePackets(); pair.b.dev.takePackets();
    pair.a.received.length = 0;
    pair.b.received.length = 0;
    pair.advance(30_000);
    const p = pair.send("a", 40, 0x77);
    pair.pump();
    pair.advance(6000);
    expect(pair.b.received).toContainEqual(p);
  });

  test("exact replays of every captured message are dropped without effect", () => {
    const { pair, messages } = corpus();
    const before = pair.b.dev.snapshot().peers[0].rxBytes;
    for (const m of messages) {
      expect(() => pair.b.dev.receiveDatagram(Uint8Array.from(m), pair.a.ep)).not.toThrow();
    }
    expect(pair.b.dev.takePackets()).toEqual([]);
    expect(pair.b.dev.snapshot().peers[0].rxBytes).toBe(before);
  });
});
