import { describe, expect, test } from "vitest";
import { Keypair, Keypairs } from "../src/keypair.js";
import { IndexTable } from "../src/indextable.js";
import { seededRandom } from "./harness.js";

const kp = (init: boolean, idx: number) => new Keypair(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), init, 0, idx, idx + 100);

describe("keypair rotation (wireguard-go BeginSymmetricSession / ReceivedWithKeypair)", () => {
  test("initiator: new session becomes current, old current becomes previous", () => {
    const ks = new Keypairs();
    const a = kp(true, 1), b = kp(true, 2), c = kp(true, 3);
    expect(ks.install(a)).toEqual([]);
    expect(ks.install(b)).toEqual([]);
    expect([ks.previous, ks.current]).toEqual([a, b]);
    expect(ks.install(c)).toEqual([a]);
    expect(a.sendKey).toEqual(new Uint8Array(32)); // zeroed
  });

  test("responder: new session waits in next until confirmed by a received packet", () => {
    const ks = new Keypairs();
    const cur = kp(true, 1);
    ks.install(cur);
    const n = kp(false, 2);
    ks.install(n);
    expect(ks.next).toBe(n);
    expect(ks.current).toBe(cur);
    expect(ks.previous).toBeNull();
    expect(ks.receivedWith(cur).promoted).toBe(false);
    expect(ks.receivedWith(n).promoted).toBe(true);
    expect([ks.previous, ks.current, ks.next]).toEqual([cur, n, null]);
  });
});

describe("IndexTable", () => {
  test("indices are random, unique and nonzero; swap and delete", () => {
    const t = new IndexTable<string, number>(seededRandom("idx"));
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const idx = t.newIndexForHandshake("p");
      expect(idx).not.toBe(0);
      expect(seen.has(idx)).toBe(false);
      seen.add(idx);
    }
    const [first] = seen;
    t.swapForKeypair(first, 42);
    expect(t.lookup(first)).toEqual({ peer: "p", keypair: 42 });
    t.delete(first);
    expect(t.lookup(first)).toBeUndefined();
    expect(t.size).toBe(999);
  });
});
