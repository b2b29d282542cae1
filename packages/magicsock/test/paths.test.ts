// Path selection end to end over the in-memory network (fake clock): DERP first, direct
// after a disco pong, back to DERP when the direct path dies, hole punching with
// CallMeMaybe through NATs, home DERP by STUN latency.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { Endpoint } from "@lattice/netaddr";
import { peerOf, sendTo, SimDerp, SimNet, simNode, type SimNode, wg } from "./sim.js";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

const tick = (ms: number) => vi.advanceTimersByTimeAsync(ms);
const lastFrom = (n: SimNode) => n.received.at(-1)?.from;

async function lanPair(): Promise<{ net: SimNet; a: SimNode; b: SimNode }> {
  const net = new SimNet();
  // Region 900's STUN answers faster: both nodes choose it as home.
  net.latency = (x, y) => (x === "203.0.113.10" || y === "203.0.113.10" ? 30 : 1);
  const derp = new SimDerp();
  const a = simNode(net, derp, "a", "10.0.0.1");
  const b = simNode(net, derp, "b", "10.0.0.2");
  await tick(100);
  a.ms.setPeers([peerOf(b)]);
  b.ms.setPeers([peerOf(a)]);
  return { net, a, b };
}

describe("magicsock paths (in-memory network)", () => {
  test("home DERP is the region whose STUN answers fastest; endpoints are STUN-mapped + local", async () => {
    const { a } = await lanPair();
    expect(a.ms.homeDerp()).toBe(900);
    expect(a.ms.derpConnected()).toEqual([900]);
    const pending = a.ms.netcheck();
    await tick(100);
    const r = await pending;
    expect(r.UDP).toBe(true);
    expect(r.PreferredDERP).toBe(900);
    expect(r.GlobalV4).toBe(`10.0.0.1:${a.bind.port}`);
    expect(r.MappingVariesByDestIP).toBe(false);
    expect(Object.keys(r.RegionLatency).sort()).toEqual(["900", "901"]);
    expect(r.RegionLatency["900"]!).toBeLessThan(r.RegionLatency["901"]!);
    expect(a.ms.endpoints()).toEqual([`10.0.0.1:${a.bind.port}`]);
    expect(a.events).toEqual([`endpoints 10.0.0.1:${a.bind.port}`, "home 900"]);
    const sent = a.ms.stats().stunSent;
    await tick(60_000); // re-STUN every 20–26 s, two servers each
    expect(a.ms.stats().stunSent - sent).toBeGreaterThanOrEqual(4);
    expect(a.ms.stats().stunSent - sent).toBeLessThanOrEqual(6);
  });

  test("first datagram goes via DERP, then direct once a disco pong trusts the path", async () => {
    const { a, b } = await lanPair();
    expect(sendTo(a, b, 1)).toBe(1);
    await tick(50);
    expect(b.received.map((r) => r.from)).toEqual(["127.3.3.40:900"]);
    expect(a.ms.peerPath(b.pub)!.curAddr).toBe(`10.0.0.2:${b.bind.port}`);
    const t = Date.now();
    sendTo(a, b, 2);
    await tick(10);
    expect(lastFrom(b)).toBe(`10.0.0.1:${a.bind.port}`);
    // Status: B attributes the direct datagram to A (lastRecv), A noted its send.
    expect(b.ms.peerPath(a.pub)!.lastRecv).toBeGreaterThan(t);
    expect(a.ms.peerPath(b.pub)!.lastSend).toBe(t);
    expect(a.ms.stats().sendDirect).toBe(1);
    expect(a.ms.stats().pathChanges).toBe(1);
  });

  test("direct path dies → DERP within ~8 s (no pong), and direct again after UDP returns", async () => {
    const { net, a, b } = await lanPair();
    sendTo(a, b, 1);
    await tick(50);
    expect(a.ms.peerPath(b.pub)!.curAddr).not.toBe("");
    let cut = true;
    net.blocked = (src, dst) => cut && src.startsWith("10.0.0.") && dst.startsWith("10.0.0.");
    for (let i = 0; i < 20; i++) {
      sendTo(a, b, 10 + i);
      await tick(500);
    }
    expect(a.ms.peerPath(b.pub)!.curAddr).toBe("");
    expect(a.ms.stats().pathLost).toBeGreaterThanOrEqual(1);
    expect(lastFrom(b)).toBe("127.3.3.40:900");
    cut = false;
    for (let i = 0; i < 14; i++) {
      sendTo(a, b, 40 + i);
      await tick(500);
    }
    expect(a.ms.peerPath(b.pub)!.curAddr).toBe(`10.0.0.2:${b.bind.port}`);
    expect(lastFrom(b)).toBe(`10.0.0.1:${a.bind.port}`);
  });

  test("idle peer: heartbeats stop after 45 s without sends", async () => {
    const { a, b } = await lanPair();
    sendTo(a, b, 1);
    await tick(10_000);
    const pings = a.ms.stats().discoSentPing;
    expect(pings).toBeGreaterThan(2); // heartbeats every 3 s while active
    await tick(60_000);
    const later = a.ms.stats().discoSentPing;
    await tick(60_000);
    expect(a.ms.stats().discoSentPing).toBe(later);
  });

  test("behind an endpoint-dependent (symmetric) NAT netcheck reports MappingVariesByDestIP", async () => {
    const net = new SimNet();
    net.addNat("198.51.100.1", "192.168.1.", true);
    const a = simNode(net, new SimDerp(), "a", "192.168.1.10");
    await tick(100);
    const r = a.ms.netcheck();
    await tick(100);
    expect(await r).toMatchObject({ UDP: true, IPv4: true, MappingVariesByDestIP: true });
    expect(a.ms.endpoints()[0]).toMatch(/^198\.51\.100\.1:/);
    expect(a.events.filter((e) => e.startsWith("endpoints")).length).toBeGreaterThanOrEqual(1);
  });

  test("CallMeMaybe hole punching through two endpoint-independent NATs", async () => {
    const net = new SimNet();
    net.addNat("198.51.100.1", "192.168.1.");
    net.addNat("198.51.100.2", "192.168.2.");
    net.latency = (x, y) => (x === "203.0.113.10" || y === "203.0.113.10" ? 30 : 5);
    const derp = new SimDerp();
    const a = simNode(net, derp, "a", "192.168.1.10");
    const b = simNode(net, derp, "b", "192.168.2.20");
    await tick(100);
    expect(a.ms.endpoints()[0]).toMatch(/^198\.51\.100\.1:5\d{4}$/);
    a.ms.setPeers([peerOf(b)]);
    b.ms.setPeers([peerOf(a)]);
    sendTo(a, b, 1);
    await tick(100);
    // A's first ping to B's public address was dropped by B's NAT; the CallMeMaybe made B
    // ping A, which opened B's NAT and answered A's.
    expect(net.natDrops).toBeGreaterThan(0);
    expect(a.ms.stats().discoSentCallMeMaybe).toBeGreaterThanOrEqual(1);
    expect(b.ms.stats().discoRecvCallMeMaybe).toBeGreaterThanOrEqual(1);
    expect(b.ms.peerPath(a.pub)!.curAddr).toBe(a.ms.endpoints()[0]);
    for (let i = 0; i < 8; i++) {
      sendTo(a, b, 2 + i);
      await tick(1000);
    }
    expect(a.ms.peerPath(b.pub)!.curAddr).toBe(b.ms.endpoints()[0]);
    expect(lastFrom(b)).toBe(a.ms.endpoints()[0]);
  });

  test("ping() alone hole-punches through two endpoint-independent NATs (CallMeMaybe), as `tailscale ping` does", async () => {
    // Found by the netns e2e test of issue 8 item 2: `lattice ping --until-direct` stayed on
    // DERP for 30 pings when no data flowed, because only data traffic sent CallMeMaybe.
    const net = new SimNet();
    net.addNat("198.51.100.1", "192.168.1.");
    net.addNat("198.51.100.2", "192.168.2.");
    net.latency = (x, y) => (x === "203.0.113.10" || y === "203.0.113.10" ? 30 : 5);
    const derp = new SimDerp();
    const a = simNode(net, derp, "a", "192.168.1.10");
    const b = simNode(net, derp, "b", "192.168.2.20");
    await tick(100);
    a.ms.setPeers([peerOf(b)]);
    b.ms.setPeers([peerOf(a)]);
    const vias: string[] = [];
    for (let i = 0; i < 5 && vias.at(-1) !== b.ms.endpoints()[0]; i++) {
      const p = a.ms.ping(b.pub, 2000);
      await tick(1000);
      vias.push((await p).endpoint || "DERP");
    }
    expect(vias[0]).toBe("DERP");
    expect(vias.at(-1)).toBe(b.ms.endpoints()[0]);
    expect(a.ms.stats().discoSentCallMeMaybe).toBeGreaterThanOrEqual(1);
    expect(b.received).toEqual([]); // no data was sent at all
  });

  test("UDP blocked entirely: STUN fails, home falls back to the lowest region, traffic flows via DERP", async () => {
    const net = new SimNet();
    net.blocked = () => true;
    const derp = new SimDerp();
    const a = simNode(net, derp, "a", "10.0.0.1");
    const b = simNode(net, derp, "b", "10.0.0.2");
    await tick(4000);
    expect(a.ms.homeDerp()).toBe(900);
    const pending = a.ms.netcheck();
    await tick(4000);
    const r = await pending;
    expect(r.UDP).toBe(false);
    a.ms.setPeers([peerOf(b)]);
    b.ms.setPeers([peerOf(a)]);
    for (let i = 0; i < 10; i++) {
      sendTo(a, b, i);
      sendTo(b, a, i);
      await tick(1000);
    }
    expect(b.received.length).toBe(10);
    expect(new Set(b.received.map((x) => x.from))).toEqual(new Set(["127.3.3.40:900"]));
    expect(a.ms.peerPath(b.pub)).toMatchObject({ curAddr: "", derpRegionId: 900 });
  });
});

describe("DERP legs and ping (in-memory network)", () => {
  test("a lost home DERP connection is redialed with backoff", async () => {
    const net = new SimNet();
    const derp = new SimDerp();
    const a = simNode(net, derp, "a", "10.0.0.1");
    await tick(100);
    expect(a.ms.derpConnected()).toEqual([900]);
    derp.down = true;
    const link = [...derp.links.get("203.0.113.9")!.values()][0]!;
    link.kill();
    expect(a.ms.derpConnected()).toEqual([]);
    await tick(10_000);
    const failed = a.ms.stats().derpConnectFailures;
    expect(failed).toBeGreaterThanOrEqual(3); // 250 ms, 500 ms, 1 s, 2 s, 4 s … (±25%)
    expect(failed).toBeLessThanOrEqual(7);
    derp.down = false;
    await tick(20_000);
    expect(a.ms.derpConnected()).toEqual([900]);
    expect(a.ms.stats().derpConnects).toBe(2);
    expect([...derp.links.get("203.0.113.9")!.values()].map((l) => l.preferred)).toEqual([true]); // NotePreferred(true) on the new connection
  });

  test("a peer's non-home region is dialed on demand and closed after 60 s unused", async () => {
    const net = new SimNet();
    net.blocked = (src, dst) => src.startsWith("10.") && dst.startsWith("10."); // no direct path
    const derp = new SimDerp();
    const a = simNode(net, derp, "a", "10.0.0.1");
    const b = simNode(net, derp, "b", "10.0.0.2");
    await tick(100);
    a.ms.setPeers([{ ...peerOf(b), homeDerp: 901 }]);
    sendTo(a, b, 1);
    await tick(100);
    expect(a.ms.derpConnected()).toEqual([900, 901]);
    // Heartbeat CallMeMaybes use the leg until the peer is idle (45 s), then 60 s unused.
    await tick(100_000);
    expect(a.ms.derpConnected()).toEqual([900, 901]);
    await tick(10_000);
    expect(a.ms.derpConnected()).toEqual([900]);
  });

  test("ping(): via DERP while no direct path is trusted, then direct", async () => {
    const { net, a, b } = await lanPair();
    let cut = true;
    net.blocked = (src, dst) => cut && src.startsWith("10.") && dst.startsWith("10.");
    const first = a.ms.ping(b.pub, 2000);
    await tick(100);
    expect(await first).toMatchObject({ endpoint: "", derpRegionId: 900, latencyMs: 40 });
    cut = false;
    const second = a.ms.ping(b.pub, 2000);
    await tick(100);
    const r = await second;
    expect(r).toMatchObject({ endpoint: `10.0.0.2:${b.bind.port}`, derpRegionId: 0 });
    expect(r.latencyMs).toBe(2);
    const lost = a.ms.ping(new Uint8Array(32).fill(7), 100).catch((e: { code: string }) => e.code);
    expect(await lost).toBe("ERR_MAGICSOCK_UNKNOWN_PEER");
  });
});

describe("CallMeMaybe and endpoint freshness", () => {
  test("a CallMeMaybe due before our endpoints are known waits for the STUN round, then lists the mapped address", async () => {
    const net = new SimNet();
    net.latency = (x, y) => (x.startsWith("203.") || y.startsWith("203.") ? 400 : 1);
    net.blocked = (src, dst) => src.startsWith("10.") && dst.startsWith("10."); // CallMeMaybe is the only way to learn
    const derp = new SimDerp();
    derp.latencyMs = 5;
    const a = simNode(net, derp, "a", "10.0.0.1");
    const b = simNode(net, derp, "b", "10.0.0.2");
    a.ms.setPeers([{ nodeKey: b.pub, discoKey: b.discoPub, endpoints: [`10.0.0.2:${b.bind.port}`], homeDerp: 900 }]);
    b.ms.setPeers([{ nodeKey: a.pub, discoKey: a.discoPub, endpoints: [], homeDerp: 900 }]);
    await tick(10);
    sendTo(a, b, 1);
    await tick(100);
    expect(a.ms.stats().discoSentCallMeMaybe).toBe(0); // endpoints not STUNed yet: waiting
    await tick(1500); // STUN round (800 ms RTT) done → CallMeMaybe goes out
    expect(a.ms.stats().discoSentCallMeMaybe).toBe(1);
    // B reached its relay at the same moment and missed that one; the next round's arrives.
    sendTo(a, b, 2);
    await tick(5000);
    sendTo(a, b, 3);
    await tick(100);
    expect(b.ms.stats().discoRecvCallMeMaybe).toBeGreaterThanOrEqual(1);
    expect(b.ms.peerPath(a.pub)!.addrs).toEqual([`10.0.0.1:${a.bind.port}`]);
  });
});

describe("three peers", () => {
  test("one send() batch mixing a direct peer, a DERP-only peer on another region and a plain endpoint", async () => {
    const net = new SimNet();
    // A and B are nearest region 900, C region 901.
    net.latency = (x, y) => {
      const c = x === "10.0.0.3" || y === "10.0.0.3";
      if (x === "203.0.113.10" || y === "203.0.113.10") return c ? 5 : 30;
      if (x === "203.0.113.9" || y === "203.0.113.9") return c ? 50 : 1;
      return 1;
    };
    // C sits behind a firewall that drops all UDP except STUN.
    net.blocked = (src, dst) => (src.startsWith("10.0.0.3") || dst.startsWith("10.0.0.3")) && !dst.startsWith("203.") && !src.startsWith("203.");
    const derp = new SimDerp();
    const a = simNode(net, derp, "a", "10.0.0.1");
    const b = simNode(net, derp, "b", "10.0.0.2");
    const c = simNode(net, derp, "c", "10.0.0.3");
    await tick(100);
    expect([a.ms.homeDerp(), b.ms.homeDerp(), c.ms.homeDerp()]).toEqual([900, 900, 901]);
    a.ms.setPeers([peerOf(b), peerOf(c)]);
    b.ms.setPeers([peerOf(a)]);
    c.ms.setPeers([peerOf(a)]);
    sendTo(a, b, 0);
    await tick(50);
    expect(a.ms.peerPath(b.pub)!.curAddr).not.toBe("");
    const plain = b.bind.key; // B's socket, addressed directly
    const eb = a.ms.peerEndpoint(b.pub);
    const ec = a.ms.peerEndpoint(c.pub);
    const n = a.ms.send([wg(1), wg(2), wg(3), wg(4), wg(5)], [eb, eb, ec, Endpoint.parse(plain)!, ec], 5);
    expect(n).toBe(5);
    await tick(100);
    expect(b.received.slice(-3).map((r) => [r.data[16], r.from])).toEqual([
      [1, `10.0.0.1:${a.bind.port}`], [2, `10.0.0.1:${a.bind.port}`], [4, `10.0.0.1:${a.bind.port}`],
    ]);
    expect(c.received.map((r) => [r.data[16], r.from])).toEqual([[3, "127.3.3.40:901"], [5, "127.3.3.40:901"]]);
    expect(a.ms.derpConnected()).toEqual([900, 901]);
  });

  test("tailnet addresses (100.64.0.0/10, fd7a:115c:a1e0::/48) are never paths: they would route through the tunnel itself", async () => {
    const { a, b } = await lanPair();
    a.ms.setPeers([{ ...peerOf(b), endpoints: [`100.64.0.2:${b.bind.port}`, `[fd7a:115c:a1e0::2]:${b.bind.port}`, `10.0.0.2:${b.bind.port}`] }]);
    sendTo(a, b, 1);
    await tick(10_000);
    expect(a.ms.peerPath(b.pub)!.addrs).toEqual([`10.0.0.2:${b.bind.port}`]);
    expect(a.ms.peerPath(b.pub)!.curAddr).toBe(`10.0.0.2:${b.bind.port}`);
    expect(a.ms.stats().dropTailnetCandidates).toBeGreaterThanOrEqual(2);
  });
});
