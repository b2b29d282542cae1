import dnsPacket from "dns-packet";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Resolver, TcpFramer, Zone, frameMessage } from "../src/index.js";

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

describe("DNS over TCP framing (RFC 7766)", () => {
  it("splits several length-prefixed messages, however the stream is cut", () => {
    const msgs = [new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(7), new Uint8Array([9])];
    const stream = concat(msgs.map(frameMessage));
    for (let cut = 0; cut <= stream.length; cut++) {
      const f = new TcpFramer(4096);
      const a = f.push(stream.subarray(0, cut));
      const b = f.push(stream.subarray(cut));
      expect([...a.messages, ...b.messages]).toEqual(msgs);
      expect(a.error ?? b.error).toBeNull();
      expect(f.buffered).toBe(0);
    }
  });

  it("a length over the limit or 0 ends the stream: error once, nothing more taken", () => {
    const f = new TcpFramer(512);
    const r = f.push(concat([frameMessage(new Uint8Array([1])), new Uint8Array([0x02, 0x01])]));
    expect(r.messages).toEqual([new Uint8Array([1])]);
    expect(r.error).toBe("too_big");
    expect(f.push(frameMessage(new Uint8Array([5])))).toEqual({ messages: [], error: "too_big" });
    expect(new TcpFramer(512).push(new Uint8Array([0, 0, 1])).error).toBe("empty");
  });

  it("fuzz: any byte stream in any pieces never throws, never buffers more than one message", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 20 }), fc.integer({ min: 1, max: 1024 }), (chunks, max) => {
        const f = new TcpFramer(max);
        for (const c of chunks) {
          const r = f.push(c);
          for (const m of r.messages) expect(m.length).toBeGreaterThan(0), expect(m.length).toBeLessThanOrEqual(max);
          expect(f.buffered).toBeLessThanOrEqual(max + 2);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("fuzz: framed messages survive any re-chunking unchanged", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 400 }), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 10 }), (msgs, cuts) => {
        const stream = concat(msgs.map(frameMessage));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const f = new TcpFramer(400);
        const got: Uint8Array[] = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          got.push(...f.push(stream.subarray(prev, p)).messages);
          prev = p;
        }
        expect(got).toEqual(msgs);
      }),
      { numRuns: 2000 },
    );
  });

  it("frameMessage refuses empty and oversized messages", () => {
    expect(() => frameMessage(new Uint8Array(0))).toThrow(RangeError);
    expect(() => frameMessage(new Uint8Array(65536))).toThrow(RangeError);
  });
});

describe("resolver over TCP: no 512-byte truncation", () => {
  const hosts = Array.from({ length: 1 }, () => ({ name: "big.tail.example", addresses: Array.from({ length: 60 }, (_, i) => `100.64.1.${i + 1}`) }));
  const r = new Resolver(Zone.build({ domain: "tail.example", hosts }));
  const q = dnsPacket.encode({ type: "query", id: 5, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name: "big.tail.example" }] });

  it("the same 60-address answer is truncated over UDP and complete over TCP", () => {
    const udp = r.handle(q);
    const tcp = r.handle(q, "tcp");
    if (udp.kind !== "answer" || tcp.kind !== "answer") throw new Error("expected answers");
    const u = dnsPacket.decode(Buffer.from(udp.response));
    const t = dnsPacket.decode(Buffer.from(tcp.response));
    expect(u.flag_tc).toBe(true);
    expect(u.answers).toHaveLength(0);
    expect(t.flag_tc).toBe(false);
    expect(t.answers).toHaveLength(60);
  });
});
