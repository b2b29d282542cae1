import { describe, expect, test } from "vitest";
import fc from "fast-check";
import type { AllowedIp } from "../src/api.js";
import { AllowedIpError, AllowedIps } from "../src/allowedips.js";
import { formatIp, maskBytes } from "../src/ipaddr.js";

const v4 = (a: number, b: number, c: number, d: number, bits: number): AllowedIp => ({
  address: `${a}.${b}.${c}.${d}`,
  family: 4,
  bits,
});
const ip4 = (a: number, b: number, c: number, d: number) => new Uint8Array([a, b, c, d]);

function v6bytes(a: number, b: number, c: number, d: number): Uint8Array {
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, a);
  dv.setUint32(4, b);
  dv.setUint32(8, c);
  dv.setUint32(12, d);
  return out;
}
const v6 = (a: number, b: number, c: number, d: number, bits: number): AllowedIp => ({
  address: formatIp(v6bytes(a, b, c, d)),
  family: 6,
  bits,
});

/** Reference: a list of (masked prefix, value); linear longest match. */
class Naive<T> {
  entries: { bytes: Uint8Array; bits: number; value: T }[] = [];
  private find(bytes: Uint8Array, bits: number) {
    const m = maskBytes(bytes.slice(), bits);
    return this.entries.findIndex((e) => e.bits === bits && e.bytes.length === m.length && e.bytes.every((x, i) => x === m[i]));
  }
  insert(bytes: Uint8Array, bits: number, value: T) {
    const i = this.find(bytes, bits);
    if (i >= 0) this.entries.splice(i, 1);
    this.entries.push({ bytes: maskBytes(bytes.slice(), bits), bits, value });
  }
  remove(bytes: Uint8Array, bits: number, value: T) {
    const i = this.find(bytes, bits);
    if (i >= 0 && this.entries[i].value === value) this.entries.splice(i, 1);
  }
  removeByValue(value: T) {
    this.entries = this.entries.filter((e) => e.value !== value);
  }
  lookup(addr: Uint8Array): T | undefined {
    let best: { bits: number; value: T } | undefined;
    for (const e of this.entries) {
      if (e.bytes.length !== addr.length) continue;
      if (!maskBytes(addr.slice(), e.bits).every((x, i) => x === e.bytes[i])) continue;
      if (best === undefined || e.bits > best.bits) best = e;
    }
    return best?.value;
  }
  entriesFor(value: T): AllowedIp[] {
    return this.entries
      .filter((e) => e.value === value)
      .map((e) => ({ address: formatIp(e.bytes), family: e.bytes.length === 4 ? 4 : 6, bits: e.bits }) as AllowedIp);
  }
}

describe("AllowedIps", () => {
  // The cases of the kernel's selftest/allowedips.c, as wireguard-go ports them (TestTrieIPv4).
  test("kernel selftest: IPv4", () => {
    const t = new AllowedIps<string>();
    t.insert(v4(192, 168, 4, 0, 24), "a");
    t.insert(v4(192, 168, 4, 4, 32), "b");
    t.insert(v4(192, 168, 0, 0, 16), "c");
    t.insert(v4(192, 95, 5, 64, 27), "d");
    t.insert(v4(192, 95, 5, 65, 27), "c"); // same /27 as d's: moves to c
    t.insert(v4(0, 0, 0, 0, 0), "e");
    t.insert(v4(64, 15, 112, 0, 20), "g");
    t.insert(v4(64, 15, 123, 211, 25), "h");
    t.insert(v4(10, 0, 0, 0, 25), "a");
    t.insert(v4(10, 0, 0, 128, 25), "b");
    t.insert(v4(10, 1, 0, 0, 30), "a");
    t.insert(v4(10, 1, 0, 4, 30), "b");
    t.insert(v4(10, 1, 0, 8, 29), "c");
    t.insert(v4(10, 1, 0, 16, 29), "d");

    expect(t.lookup(ip4(192, 168, 4, 20))).toBe("a");
    expect(t.lookup(ip4(192, 168, 4, 0))).toBe("a");
    expect(t.lookup(ip4(192, 168, 4, 4))).toBe("b");
    expect(t.lookup(ip4(192, 168, 200, 182))).toBe("c");
    expect(t.lookup(ip4(192, 95, 5, 68))).toBe("c");
    expect(t.lookup(ip4(192, 95, 5, 96))).toBe("e");
    expect(t.lookup(ip4(64, 15, 116, 26))).toBe("g");
    expect(t.lookup(ip4(64, 15, 127, 3))).toBe("g");
    expect(t.entriesFor("d")).toEqual([v4(10, 1, 0, 16, 29)]);
    expect(t.entriesFor("h")).toEqual([v4(64, 15, 123, 128, 25)]);

    for (const first of [1, 64, 128, 192, 255]) t.insert(v4(first, 0, 0, 0, 32), "a");
    for (const first of [1, 64, 128, 192, 255]) expect(t.lookup(ip4(first, 0, 0, 0))).toBe("a");
    t.removeByValue("a");
    for (const first of [1, 64, 128, 192, 255]) expect(t.lookup(ip4(first, 0, 0, 0))).not.toBe("a");

    for (const v of ["a", "b", "c", "d", "e", "g", "h"]) t.removeByValue(v);
    expect(t.size).toBe(0);
    expect(t.nodeCount()).toBe(0); // the trie is empty again, branch points included
    expect(t.lookup(ip4(192, 168, 4, 4))).toBeUndefined();

    t.insert(v4(192, 168, 0, 0, 16), "a");
    t.insert(v4(192, 168, 0, 0, 24), "a");
    t.removeByValue("a");
    expect(t.lookup(ip4(192, 168, 0, 1))).toBeUndefined();

    t.insert(v4(1, 0, 0, 0, 32), "a");
    t.insert(v4(192, 0, 0, 0, 24), "a");
    expect(t.lookup(ip4(1, 0, 0, 0))).toBe("a");
    expect(t.lookup(ip4(192, 0, 0, 1))).toBe("a");
    expect(t.remove(v4(192, 0, 0, 0, 32), "a")).toBe(false); // no such prefix
    expect(t.lookup(ip4(192, 0, 0, 1))).toBe("a");
    expect(t.remove(v4(192, 0, 0, 0, 24), "b")).toBe(false); // not b's
    expect(t.lookup(ip4(192, 0, 0, 1))).toBe("a");
    expect(t.remove(v4(192, 0, 0, 0, 24), "a")).toBe(true);
    expect(t.lookup(ip4(192, 0, 0, 1))).toBeUndefined();
    expect(t.remove(v4(1, 0, 0, 0, 32), "a")).toBe(true);
    expect(t.lookup(ip4(1, 0, 0, 0))).toBeUndefined();
    expect(t.size).toBe(0);
  });

  test("kernel selftest: IPv6", () => {
    const t = new AllowedIps<string>();
    t.insert(v6(0x26075300, 0x60006b00, 0, 0xc05f0543, 128), "d");
    t.insert(v6(0x26075300, 0x60006b00, 0, 0, 64), "c");
    t.insert(v6(0, 0, 0, 0, 0), "e");
    t.insert(v6(0, 0, 0, 0, 0), "f");
    t.insert(v6(0x24046800, 0, 0, 0, 32), "g");
    t.insert(v6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 64), "h");
    t.insert(v6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 128), "a");
    t.insert(v6(0x24446800, 0x40e40800, 0xdeaebeef, 0xdefbeef, 128), "c");
    t.insert(v6(0x24446800, 0xf0e40800, 0xeeaebeef, 0, 98), "b");
    const L = (a: number, b: number, c: number, d: number) => t.lookup(v6bytes(a, b, c, d));
    expect(L(0x26075300, 0x60006b00, 0, 0xc05f0543)).toBe("d");
    expect(L(0x26075300, 0x60006b00, 0, 0xc02e01ee)).toBe("c");
    expect(L(0x26075300, 0x60006b01, 0, 0)).toBe("f");
    expect(L(0x24046800, 0x40040806, 0, 0x1006)).toBe("g");
    expect(L(0x24046800, 0x40040806, 0x1234, 0x5678)).toBe("g");
    expect(L(0x240467ff, 0x40040806, 0x1234, 0x5678)).toBe("f");
    expect(L(0x24046801, 0x40040806, 0x1234, 0x5678)).toBe("f");
    expect(L(0x24046800, 0x40040800, 0x1234, 0x5678)).toBe("h");
    expect(L(0x24046800, 0x40040800, 0, 0)).toBe("h");
    expect(L(0x24046800, 0x40040800, 0x10101010, 0x10101010)).toBe("h");
    expect(L(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)).toBe("a");
    expect(t.entriesFor("e")).toEqual([]);
    expect(t.entriesFor("f")).toEqual([{ address: "::", family: 6, bits: 0 }]);

    t.insert(v6(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef, 128), "a");
    t.insert(v6(0x24446800, 0xf0e40800, 0xeeaebeef, 0, 98), "a");
    expect(L(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef)).toBe("a");
    expect(L(0x24446800, 0xf0e40800, 0xeeaebeef, 0x10101010)).toBe("a");
    t.remove(v6(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef, 96), "a");
    expect(L(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef)).toBe("a");
    t.remove(v6(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef, 128), "b");
    expect(L(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef)).toBe("a");
    t.remove(v6(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef, 128), "a");
    expect(L(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef)).not.toBe("a");
    t.remove(v6(0x24446800, 0xf0e40800, 0xeeaebeef, 0, 98), "b");
    expect(L(0x24446800, 0xf0e40800, 0xeeaebeef, 0x10101010)).toBe("a");
    t.remove(v6(0x24446800, 0xf0e40800, 0xeeaebeef, 0, 98), "a");
    expect(L(0x24446800, 0xf0e40800, 0xeeaebeef, 0x10101010)).not.toBe("a");
  });

  test("host bits are masked; entries keep insertion order; re-insert moves to the end", () => {
    const t = new AllowedIps<object>();
    const p = {};
    const q = {};
    t.insert({ address: "10.0.0.1", family: 4, bits: 8 }, p);
    t.insert({ address: "fd7a:115c:a1e0::1", family: 6, bits: 48 }, p);
    t.insert({ address: "100.64.0.7", family: 4, bits: 32 }, p);
    expect(t.entriesFor(p)).toEqual([
      { address: "10.0.0.0", family: 4, bits: 8 },
      { address: "fd7a:115c:a1e0::", family: 6, bits: 48 },
      { address: "100.64.0.7", family: 4, bits: 32 },
    ]);
    t.insert({ address: "10.9.9.9", family: 4, bits: 8 }, p); // same prefix once masked
    expect(t.size).toBe(3);
    expect(t.entriesFor(p).map((e) => e.address)).toEqual(["fd7a:115c:a1e0::", "100.64.0.7", "10.0.0.0"]);
    t.insert({ address: "10.0.0.0", family: 4, bits: 8 }, q); // moves to q
    expect(t.entriesFor(p)).toHaveLength(2);
    expect(t.entriesFor(q)).toEqual([{ address: "10.0.0.0", family: 4, bits: 8 }]);
    expect(t.remove({ address: "10.1.2.3", family: 4, bits: 8 }, q)).toBe(true); // masked too
    expect(t.size).toBe(2);
    expect([...t.values()]).toEqual([p]);
  });

  test("IPv4 and IPv6 are separate; IPv4-mapped IPv6 stays IPv6", () => {
    const t = new AllowedIps<string>();
    t.insert({ address: "0.0.0.0", family: 4, bits: 0 }, "v4");
    t.insert({ address: "::ffff:0.0.0.0", family: 6, bits: 96 }, "mapped");
    expect(t.lookup(ip4(1, 2, 3, 4))).toBe("v4");
    expect(t.lookup(v6bytes(0, 0, 0xffff, 0x01020304))).toBe("mapped");
    expect(t.lookup(v6bytes(1, 0, 0, 0))).toBeUndefined();
    expect(t.entriesFor("mapped")).toEqual([{ address: "::ffff:0.0.0.0", family: 6, bits: 96 }]);
  });

  test("lookupAt reads packet fields in place and refuses short buffers", () => {
    const t = new AllowedIps<string>();
    t.insert({ address: "100.64.0.0", family: 4, bits: 10 }, "ts");
    t.insert({ address: "fd7a:115c:a1e0::", family: 6, bits: 48 }, "ts6");
    const pkt = new Uint8Array(40);
    pkt.set([100, 100, 1, 2], 16);
    expect(t.lookupAt(pkt, 16, 4)).toBe("ts");
    expect(t.lookupAt(pkt, 37, 4)).toBeUndefined();
    expect(t.lookupAt(pkt, -1, 4)).toBeUndefined();
    pkt.set(v6bytes(0xfd7a115c, 0xa1e00000, 0, 9), 24);
    expect(t.lookupAt(pkt, 24, 6)).toBe("ts6");
    expect(t.lookupAt(pkt, 25, 6)).toBeUndefined();
    expect(t.lookup(new Uint8Array(5))).toBeUndefined();
  });

  test("bad prefixes throw AllowedIpError", () => {
    const t = new AllowedIps<string>();
    expect(() => t.insert({ address: "10.0.0.0", family: 4, bits: 33 }, "x")).toThrow(AllowedIpError);
    expect(() => t.insert({ address: "::", family: 4, bits: 0 }, "x")).toThrow(AllowedIpError);
    expect(() => t.insert({ address: "nope", family: 4, bits: 0 }, "x")).toThrow(AllowedIpError);
    expect(() => t.insert({ address: "::", family: 6, bits: 1.5 }, "x")).toThrow(/prefix length/);
    expect(() => t.insertBytes(new Uint8Array(3), 0, "x")).toThrow(AllowedIpError);
  });

  test("property: agrees with a naive longest-prefix list under random operations", () => {
    const values = ["p0", "p1", "p2", "p3", "p4"];
    // Addresses from a small pool so that prefixes nest and collide often.
    const addr4 = fc.tuple(fc.constantFrom(0, 10, 192, 255), fc.constantFrom(0, 1, 168, 255), fc.nat(255), fc.nat(255)).map((a) => new Uint8Array(a));
    const addr6 = fc.tuple(fc.constantFrom(0, 0x20, 0xfd, 0xff), fc.uint8Array({ minLength: 15, maxLength: 15 })).map(([h, rest]) => {
      const b = new Uint8Array(16);
      b[0] = h;
      b.set(rest.map((x) => (x & 0x81)), 1);
      return b;
    });
    const prefix = fc.oneof(
      fc.tuple(addr4, fc.integer({ min: 0, max: 32 })),
      fc.tuple(addr6, fc.integer({ min: 0, max: 128 })),
    );
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant("insert" as const), p: prefix, v: fc.constantFrom(...values) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("remove" as const), p: prefix, v: fc.constantFrom(...values) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("removeByValue" as const), v: fc.constantFrom(...values) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), fc.array(fc.oneof(addr4, addr6), { minLength: 20, maxLength: 20 }), (ops, probes) => {
        const t = new AllowedIps<string>();
        const n = new Naive<string>();
        for (const o of ops) {
          if (o.kind === "insert") {
            const [b, bits] = o.p;
            t.insertBytes(b, bits, o.v);
            n.insert(b, bits, o.v);
          } else if (o.kind === "remove") {
            const [b, bits] = o.p;
            t.remove({ address: formatIp(b), family: b.length === 4 ? 4 : 6, bits }, o.v);
            n.remove(b, bits, o.v);
          } else {
            t.removeByValue(o.v);
            n.removeByValue(o.v);
          }
        }
        expect(t.size).toBe(n.entries.length);
        // Path compression: branch points never outnumber valued nodes (one fewer per trie).
        expect(t.nodeCount()).toBeLessThanOrEqual(Math.max(0, 2 * t.size - 1) + 1);
        for (const v of values) expect(t.entriesFor(v)).toEqual(n.entriesFor(v));
        // Probe the random addresses and every stored prefix's own address.
        for (const a of [...probes, ...n.entries.map((e) => e.bytes)]) expect(t.lookup(a)).toBe(n.lookup(a));
      }),
      { numRuns: 400 },
    );
  });

  test("65,000+ prefixes on one value, 100k over many values, then removal", () => {
    const t = new AllowedIps<number>();
    for (let i = 0; i < 70_000; i++) t.insertBytes(new Uint8Array([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]), 32, 0);
    expect(t.size).toBe(70_000);
    expect(t.entriesFor(0)).toHaveLength(70_000);
    for (let i = 0; i < 100_000; i++) {
      const b = new Uint8Array(16);
      b[0] = 0x20;
      b[1] = 0x01;
      new DataView(b.buffer).setUint32(4, i * 2654435761);
      t.insertBytes(b, 64, 1 + (i % 1000));
    }
    expect(t.size).toBe(170_000);
    expect(t.lookup(new Uint8Array([10, 1, 0, 5]))).toBe(0);
    expect(t.lookup(new Uint8Array([10, 2, 0, 0]))).toBeUndefined();
    expect(t.removeByValue(0)).toBe(70_000);
    expect(t.lookup(new Uint8Array([10, 1, 0, 5]))).toBeUndefined();
    for (let v = 1; v <= 1000; v++) t.removeByValue(v);
    expect(t.size).toBe(0);
    expect(t.nodeCount()).toBe(0);
  });
});
