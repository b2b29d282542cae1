// Hostile input on the shared UDP socket and over DERP: garbage, forged and fuzzed disco
// never throws out of the receive path, reaches the device only when shaped like
// WireGuard, and is counted exactly once.
import { afterEach, describe, expect, test } from "vitest";
import fc from "fast-check";
import { boxSeal } from "@lattice/crypto";
import { MAGIC, seal } from "@lattice/disco";
import { Endpoint } from "@lattice/netaddr";
import { MAX_CANDIDATES } from "../src/index.js";
import { peerOf, seeded, SimDerp, SimNet, simNode, type SimNode } from "./sim.js";

const nodes: SimNode[] = [];
afterEach(() => {
  // The receive path catches handler bugs (counted): a fuzz run must not have hit any.
  for (const n of nodes.splice(0)) {
    expect(n.ms.stats().internalErrors).toBe(0);
    n.ms.close();
  }
});

function pair(): { a: SimNode; b: SimNode; bDisco: { publicKey: Uint8Array; privateKey: Uint8Array }; derp: SimDerp } {
  const net = new SimNet();
  const derp = new SimDerp();
  derp.latencyMs = 1;
  const a = simNode(net, derp, "ha", "10.0.0.1");
  const b = simNode(net, derp, "hb", "10.0.0.2");
  nodes.push(a, b);
  a.ms.setPeers([peerOf(b, [`10.0.0.2:${b.bind.port}`])]);
  const r = seeded("hb");
  r(32);
  return { a, b, bDisco: { publicKey: b.discoPub, privateKey: r(32) }, derp };
}

/** Waits for the STUN round to pick home region 900 and its DERP leg to come up. */
async function homeConnected(n: SimNode): Promise<void> {
  for (let i = 0; i < 200 && !n.ms.derpConnected().includes(900); i++) await new Promise((r) => setTimeout(r, 10));
  expect(n.ms.derpConnected()).toEqual([900]);
}

const from = Endpoint.parse("192.0.2.66:4444")!;
const inject = (n: SimNode, d: Uint8Array) => n.bind.receiver!.onReceive([d], [from], 1);
const sum = (s: Record<string, number>, keys: string[]) => keys.reduce((t, k) => t + s[k]!, 0);
const CLASSES = ["udpRecvWireGuard", "udpRecvStun", "udpRecvDisco", "dropUdpGarbage"];

describe("hostile input", () => {
  test("arbitrary UDP datagrams: never thrown, each counted once, only WireGuard-shaped ones reach the device", () => {
    const { a } = pair();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (d) => {
        const before = sum(a.ms.stats(), CLASSES);
        const got = a.received.length;
        inject(a, d);
        expect(sum(a.ms.stats(), CLASSES)).toBe(before + 1);
        const wgShaped = d.length >= 4 && d[0]! >= 1 && d[0]! <= 4 && d[1] === 0 && d[2] === 0 && d[3] === 0;
        expect(a.received.length).toBe(got + (wgShaped ? 1 : 0));
      }),
      { numRuns: 2000 },
    );
  });

  test("garbage datagrams (text, zeros, truncated disco) are dropped and counted", () => {
    const { a } = pair();
    inject(a, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    inject(a, new Uint8Array(0));
    inject(a, MAGIC.slice());
    expect(a.ms.stats().dropUdpGarbage).toBe(3);
    expect(a.received.length).toBe(0);
  });

  test("fuzzed disco from a known sender key (bad boxes) and unknown keys: dropped by reason", () => {
    const { a, b } = pair();
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ minLength: 24, maxLength: 300 }), (known, rest) => {
        const d = new Uint8Array(MAGIC.length + 32 + rest.length);
        d.set(MAGIC);
        d.set(known ? b.discoPub : rest.subarray(0, 32).map((x) => x ^ 0x5a), MAGIC.length);
        d.set(rest, MAGIC.length + 32);
        const s0 = a.ms.stats();
        inject(a, d);
        const s1 = a.ms.stats();
        const dropped = (x: typeof s0) => x.dropDiscoBad + x.dropDiscoUnknownSender + x.dropDiscoRateLimited;
        expect(dropped(s1)).toBe(dropped(s0) + 1);
      }),
      { numRuns: 500 },
    );
    expect(a.received.length).toBe(0);
  });

  test("a flood of forged boxes under a peer's key costs at most 50 box opens per second; its real pings still work after", async () => {
    const { a, bDisco } = pair();
    const forged = new Uint8Array(MAGIC.length + 56 + 40);
    forged.set(MAGIC);
    forged.set(bDisco.publicKey, MAGIC.length);
    for (let i = 0; i < 1000; i++) inject(a, forged);
    expect(a.ms.stats().dropDiscoBad).toBe(50);
    expect(a.ms.stats().dropDiscoRateLimited).toBe(950);
    await new Promise((r) => setTimeout(r, 1100));
    inject(a, seal({ type: "ping", txId: new Uint8Array(12), padding: 0 }, bDisco, a.discoPub, seeded("n3")(24)));
    expect(a.ms.stats().discoRecvPing).toBe(1);
    expect(a.ms.stats().discoSentPong).toBe(1);
  });

  test("authentic boxes with fuzzed plaintext (any type, any body) never throw", () => {
    const { a, bDisco } = pair();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 400 }), fc.uint8Array({ minLength: 24, maxLength: 24 }), (type, ver, body, nonce) => {
        const plain = new Uint8Array(2 + body.length);
        plain[0] = type % 5;
        plain[1] = ver;
        plain.set(body, 2);
        const boxed = boxSeal(plain, nonce, a.discoPub, bDisco.privateKey);
        const d = new Uint8Array(MAGIC.length + 56 + boxed.length);
        d.set(MAGIC);
        d.set(bDisco.publicKey, MAGIC.length);
        d.set(nonce, MAGIC.length + 32);
        d.set(boxed, MAGIC.length + 56);
        inject(a, d);
      }),
      { numRuns: 500 },
    );
    expect(a.ms.stats().udpRecvDisco).toBe(500);
  });

  test("a CallMeMaybe listing thousands of endpoints over DERP keeps at most MAX_CANDIDATES", async () => {
    const { a, b, bDisco, derp } = pair();
    await homeConnected(a);
    const endpoints = Array.from({ length: 3000 }, (_, i) => ({ ip: Uint8Array.of(10, 9, i >> 8, i & 255), port: 1000 + i }));
    const pkt = seal({ type: "call-me-maybe", endpoints }, bDisco, a.discoPub, seeded("n")(24));
    const link = await derp.dial("https://203.0.113.9/derp", { privateKey: seeded("hb")(32), random: seeded("x"), insecureSkipVerify: false, timeoutMs: 1000 });
    link.send(a.pub, pkt);
    await new Promise((r) => setTimeout(r, 50));
    expect(a.ms.stats().discoRecvCallMeMaybe).toBe(1);
    expect(a.ms.peerPath(b.pub)!.addrs.length).toBe(MAX_CANDIDATES);
    expect(a.ms.stats().dropCandidates).toBeGreaterThan(2000);
  });

  test("disco over DERP from another node key than the disco key's owner is dropped", async () => {
    const { a, bDisco, derp } = pair();
    await homeConnected(a);
    const pkt = seal({ type: "ping", txId: new Uint8Array(12), padding: 0 }, bDisco, a.discoPub, seeded("n2")(24));
    const link = await derp.dial("https://203.0.113.9/derp", { privateKey: seeded("mallory")(32), random: seeded("x"), insecureSkipVerify: false, timeoutMs: 1000 });
    link.send(a.pub, pkt);
    await new Promise((r) => setTimeout(r, 50));
    expect(a.ms.stats().dropDiscoDerpKeyMismatch).toBe(1);
    expect(a.ms.stats().discoSentPong).toBe(0);
  });
});
