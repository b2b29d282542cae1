import { describe, expect, test } from "vitest";
import { Endpoint } from "../src/api.js";
import { REJECT_AFTER_TIME, REKEY_AFTER_TIME, KEEPALIVE_TIMEOUT } from "../src/constants.js";
import { Pair, established, ipv4, ipv6, peerUpdate, config, seededRandom } from "./harness.js";
import { Device } from "../src/device.js";
import { CookieGenerator } from "../src/cookie.js";
import { x25519PublicKey } from "@lattice/crypto";

const INIT = 1, RESP = 2, COOKIE = 3, DATA = 4;

describe("handshake and data", () => {
  test("A's first packet triggers a handshake; data flows both ways, counters and last handshake set", () => {
    const net = new Pair();
    const p1 = net.send("a", 100);
    expect(net.a.dev.takeDatagrams).toBeDefined();
    net.pump();
    expect(net.count("a", INIT)).toBe(1);
    expect(net.count("b", RESP)).toBe(1);
    expect(net.b.received).toEqual([p1]);
    const p2 = net.send("b", 300, 0x11);
    net.pump();
    expect(net.a.received).toEqual([p2]);
    // Transport messages are padded to 16 bytes: 120-byte packet → 128 + 32.
    const data = net.log.filter((l) => l.data[0] === DATA && l.from === "a");
    expect(data[0].data.length).toBe(32 + 128);
    const sa = net.a.dev.snapshot().peers[0];
    const sb = net.b.dev.snapshot().peers[0];
    expect(sa.lastHandshakeTimeSec).toBe(Math.floor(net.clock.wallNow() / 1000));
    expect(sb.lastHandshakeTimeSec).toBeGreaterThan(0);
    const aTx = net.log.filter((l) => l.from === "a").reduce((n, l) => n + l.data.length, 0);
    const bTx = net.log.filter((l) => l.from === "b").reduce((n, l) => n + l.data.length, 0);
    expect(sa.txBytes).toBe(BigInt(aTx));
    expect(sb.rxBytes).toBe(BigInt(aTx));
    expect(sb.txBytes).toBe(BigInt(bTx));
    expect(sa.rxBytes).toBe(BigInt(bTx));
    expect(sb.endpoint).toEqual(net.a.ep);
  });

  test("responder uses the new session only after the initiator's first transport message (key confirmation)", () => {
    const net = new Pair();
    net.b.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.a.pub, { updateOnly: true, endpoint: net.a.ep })] });
    // B has data for A before any session: B initiates, A responds.
    net.b.dev.sendPacket(ipv4("192.168.4.2", "192.168.4.1"));
    const init = net.b.dev.takeDatagrams();
    expect(init.length).toBe(1);
    net.a.dev.receiveDatagram(init[0].data, net.b.ep);
    const resp = net.a.dev.takeDatagrams();
    expect(resp.map((d) => d.data[0])).toEqual([RESP]);
    // A (responder) has only a `next` session: a packet to B is staged, not sent as data.
    net.a.dev.sendPacket(ipv4("192.168.4.1", "192.168.4.2"));
    expect(net.a.dev.takeDatagrams().filter((d) => d.data[0] === DATA)).toEqual([]);
    net.b.dev.receiveDatagram(resp[0].data, net.a.ep);
    const fromB = net.b.dev.takeDatagrams();
    expect(fromB.map((d) => d.data[0])).toEqual([DATA]);
    net.a.dev.receiveDatagram(fromB[0].data, net.b.ep);
    expect(net.a.dev.takePackets().length).toBe(1);
    // Confirmation released A's staged packet.
    const fromA = net.a.dev.takeDatagrams();
    expect(fromA.map((d) => d.data[0])).toEqual([DATA]);
    net.b.dev.receiveDatagram(fromA[0].data, net.a.ep);
    expect(net.b.dev.takePackets().length).toBe(1);
  });

  test("IPv6 inner packets flow and padding is trimmed to the IPv6 length", () => {
    const net = established();
    const a6 = new Uint8Array(16); a6[0] = 0xfd; a6[15] = 1;
    const b6 = new Uint8Array(16); b6[0] = 0xfd; b6[15] = 2;
    const p = ipv6(a6, b6, 7);
    net.a.dev.sendPacket(Uint8Array.from(p));
    net.pump();
    expect(net.b.received.at(-1)).toEqual(p);
    const q = ipv6(b6, a6, 1);
    net.b.dev.sendPacket(Uint8Array.from(q));
    net.pump();
    expect(net.a.received.at(-1)).toEqual(q);
  });

  test("batch send/receive delivers every packet in order", () => {
    const net = established();
    const batch = Array.from({ length: 50 }, (_, i) => ipv4("192.168.4.1", "192.168.4.2", 10 + i, i));
    net.a.dev.sendPackets(batch.map((p) => Uint8Array.from(p)));
    const dgs = net.a.dev.takeDatagrams();
    expect(dgs.length).toBe(50);
    net.b.dev.receiveDatagrams(dgs.map((d) => ({ data: d.data, from: net.a.ep })));
    expect(net.b.dev.takePackets().map((p) => Uint8Array.from(p))).toEqual(batch);
  });

  test("packets with no route and malformed TUN packets are counted drops", () => {
    const net = established();
    net.a.dev.sendPacket(ipv4("192.168.4.1", "8.8.8.8"));
    net.a.dev.sendPacket(new Uint8Array([0x45, 0, 0]));
    const s = net.a.dev.stats();
    expect(s.drops.noRoute).toBe(1);
    expect(s.drops.invalidInnerPacket).toBe(1);
    expect(net.a.dev.takeDatagrams()).toEqual([]);
  });
});

describe("timers", () => {
  test("rekey after REKEY_AFTER_TIME without losing packets", () => {
    const net = established();
    let sent = 1;
    // Steady traffic both ways every second for 300 s.
    for (let t = 0; t < 300; t++) {
      net.send("a", 30, t & 255);
      net.send("b", 30, t & 255);
      sent++;
      net.advance(1000);
    }
    expect(net.b.received.length).toBe(sent);
    expect(net.a.received.length).toBe(sent - 1);
    // At least two rekeys happened, all initiated by A (the initiator rekeys on send).
    expect(net.count("a", INIT)).toBeGreaterThanOrEqual(3);
    expect(net.a.dev.stats().drops.keypairExpired + net.b.dev.stats().drops.keypairExpired).toBe(0);
    expect(net.b.dev.stats().drops.decryptFailed).toBe(0);
  });

  test("a session past REJECT_AFTER_TIME is not used to send, and its packets are refused", () => {
    const net = established();
    // Capture a data packet without delivering it.
    net.send("a");
    const old = net.a.dev.takeDatagrams()[0].data;
    net.filter = () => false; // the network goes away
    net.advance(REJECT_AFTER_TIME + 1000);
    net.log.length = 0;
    net.b.dev.receiveDatagram(Uint8Array.from(old), net.a.ep);
    expect(net.b.dev.stats().drops.keypairExpired).toBe(1);
    net.send("a");
    const out = net.a.dev.takeDatagrams();
    expect(out.map((d) => d.data[0])).toEqual([INIT]);
  });

  test("keepalive sent KEEPALIVE_TIMEOUT after receiving data with nothing to send", () => {
    const net = established();
    net.log.length = 0;
    net.advance(KEEPALIVE_TIMEOUT - 100);
    expect(net.count("b", DATA)).toBe(0);
    net.advance(200);
    const ka = net.log.filter((l) => l.from === "b" && l.data[0] === DATA);
    expect(ka.length).toBe(1);
    expect(ka[0].data.length).toBe(32);
    expect(net.a.dev.stats().keepalivesReceived).toBeGreaterThanOrEqual(1);
    expect(net.a.received.length).toBe(0); // keepalives are not delivered
  });

  test("persistent keepalive: setting it on an up device handshakes at once, then keepalives every interval", () => {
    const net = new Pair();
    net.a.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.b.pub, { updateOnly: true, persistentKeepaliveInterval: 25 })] });
    net.pump();
    expect(net.count("a", INIT)).toBe(1);
    expect(net.count("b", RESP)).toBe(1);
    expect(net.count("a", DATA)).toBe(1); // the keepalive that confirms the session
    net.log.length = 0;
    net.advance(100_000);
    const kas = net.log.filter((l) => l.from === "a" && l.data[0] === DATA && l.data.length === 32);
    expect(kas.length).toBeGreaterThanOrEqual(3);
    expect(kas.length).toBeLessThanOrEqual(4);
    expect(net.a.dev.snapshot().peers[0].persistentKeepaliveInterval).toBe(25);
  });

  test("initiation retransmitted after REKEY_TIMEOUT + jitter, given up after REKEY_ATTEMPT_TIME", () => {
    const net = new Pair();
    net.filter = () => false;
    const times: number[] = [];
    const start = net.clock.t;
    net.send("a");
    const origPump = net.pump.bind(net);
    net.pump = () => {
      const before = net.log.length;
      const r = origPump();
      for (const l of net.log.slice(before)) if (l.from === "a" && l.data[0] === INIT) times.push(net.clock.t - start);
      return r;
    };
    net.pump();
    net.advance(200_000);
    expect(times[0]).toBe(0);
    expect(times[1]).toBeGreaterThanOrEqual(5000);
    expect(times[1]).toBeLessThan(5334);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(5000);
    // wireguard-go: 1 initiation + MAX_TIMER_HANDSHAKES (18) + 1 retries, then give up (~100 s).
    expect(times.length).toBe(20);
    expect(times.at(-1)!).toBeLessThan(110_000);
    expect(net.a.dev.stats().drops.handshakeGaveUp).toBe(1);
  });
});

describe("replay, reordering, roaming, cryptokey routing", () => {
  test("a replayed transport packet is dropped", () => {
    const net = established();
    net.send("a");
    const d = net.a.dev.takeDatagrams()[0].data;
    const copy = Uint8Array.from(d);
    net.b.dev.receiveDatagram(d, net.a.ep);
    net.b.dev.receiveDatagram(copy, net.a.ep);
    expect(net.b.dev.takePackets().length).toBe(1);
    expect(net.b.dev.stats().drops.replayedCounter).toBe(1);
  });

  test("reordered packets within the window are all accepted", () => {
    const net = established();
    for (let i = 0; i < 64; i++) net.send("a", 20, i);
    const dgs = net.a.dev.takeDatagrams().reverse();
    for (const d of dgs) net.b.dev.receiveDatagram(d.data, net.a.ep);
    expect(net.b.dev.takePackets().length).toBe(64);
    expect(net.b.dev.stats().drops.replayedCounter).toBe(0);
  });

  test("roaming: B's endpoint for A follows the source of authenticated packets only", () => {
    const net = established();
    const roamed = Endpoint.fromAddress("203.0.113.7", 40000)!;
    // An unauthenticated packet from elsewhere does not move the endpoint.
    const junk = new Uint8Array(64); junk[0] = 4;
    net.b.dev.receiveDatagram(junk, roamed);
    expect(net.b.dev.snapshot().peers[0].endpoint).toEqual(net.a.ep);
    net.aSourceAtB = roamed;
    net.send("a");
    net.pump();
    expect(net.b.dev.snapshot().peers[0].endpoint).toEqual(roamed);
    net.send("b");
    const out = net.b.dev.takeDatagrams();
    expect(out[0].to).toEqual(roamed);
  });

  test("roaming off (magicsock): authenticated packets from a new source never move the peer's endpoint", () => {
    const net = new Pair({ roaming: false });
    // Without roaming B cannot learn A's endpoint from the handshake: configure it.
    net.b.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.a.pub, { updateOnly: true, endpoint: net.a.ep })] });
    const roamed = Endpoint.fromAddress("127.3.3.40", 900)!;
    net.aSourceAtB = roamed;
    net.send("a");
    net.pump();
    expect(net.b.received.length).toBe(1); // handshake and data arrived from `roamed`
    expect(net.b.dev.snapshot().peers[0].endpoint).toEqual(net.a.ep);
    net.send("b");
    const out = net.b.dev.takeDatagrams();
    expect(out.length).toBe(1);
    expect(out[0].to).toEqual(net.a.ep);
  });

  test("cryptokey routing: a decrypted packet whose source is not the peer's allowed IP is dropped", () => {
    const net = established();
    net.a.dev.sendPacket(ipv4("192.168.99.9", "192.168.4.2"));
    net.pump();
    expect(net.b.received.length).toBe(1);
    expect(net.b.dev.stats().drops.sourceNotAllowed).toBe(1);
  });
});

describe("cookies and hostile input", () => {
  test("under load: initiation without mac2 gets a cookie reply, the retry with mac2 is accepted", () => {
    const net = new Pair();
    net.b.dev.setUnderLoadUntil(net.clock.t + 60_000);
    net.send("a");
    net.pump();
    expect(net.count("b", COOKIE)).toBe(1);
    expect(net.count("b", RESP)).toBe(0);
    expect(net.b.dev.stats().drops.cookieReplySent).toBe(1);
    net.advance(6000);
    expect(net.count("a", INIT)).toBe(2);
    expect(net.count("b", RESP)).toBe(1);
    expect(net.b.received.length).toBe(1);
  });

  test("under load: handshakes with valid mac2 are rate-limited per source IP (20/s, burst 5) before any DH", () => {
    const net = new Pair();
    net.b.dev.setUnderLoadUntil(net.clock.t + 1e9);
    net.send("a");
    net.pump(); // cookie reply: A now holds a cookie
    net.clock.t += 5400;
    net.a.dev.tick(); // retransmission carries mac2
    const init = net.a.dev.takeDatagrams().find((d) => d.data[0] === INIT)!.data;
    for (let i = 0; i < 10; i++) net.b.dev.receiveDatagram(Uint8Array.from(init), net.a.ep);
    const d = net.b.dev.stats().drops;
    expect(net.b.dev.takeDatagrams().filter((x) => x.data[0] === RESP).length).toBe(1);
    expect(d.rateLimited).toBe(5);
    expect(d.replayedTimestamp).toBe(4);
    // Tokens refill at 20/s: 50 ms later one more is let through (and refused as a replay).
    net.clock.t += 50;
    net.b.dev.receiveDatagram(Uint8Array.from(init), net.a.ep);
    expect(net.b.dev.stats().drops.replayedTimestamp).toBe(5);
  });

  test("a peer with a low-order public key never gets a handshake and nothing throws", () => {
    const random = seededRandom("lo");
    const dev = new Device({ now: () => 0, random });
    const lowOrder = new Uint8Array(32); lowOrder[0] = 1; // u = 1: order 1 ... all-zero shared secret
    dev.applyConfig(config(random(32), [peerUpdate(lowOrder, {
      endpoint: Endpoint.fromAddress("10.0.0.9", 1)!, allowedIps: [{ address: "0.0.0.0", family: 4, bits: 0 }],
    })]));
    expect(() => dev.sendPacket(ipv4("1.1.1.1", "2.2.2.2"))).not.toThrow();
    expect(dev.takeDatagrams()).toEqual([]);
    expect(dev.stats().drops.lowOrderKey).toBe(1);
  });

  test("an initiation with a low-order ephemeral key (valid mac1) is dropped without throwing", () => {
    const net = new Pair();
    net.send("a");
    const init = net.a.dev.takeDatagrams()[0].data;
    init.fill(0, 8, 40); // ephemeral := 0 (low order)
    new CookieGenerator(net.b.pub).addMacs(init, net.clock.t);
    expect(() => net.b.dev.receiveDatagram(init, net.a.ep)).not.toThrow();
    expect(net.b.dev.stats().drops.lowOrderKey).toBe(1);
    expect(net.b.dev.takeDatagrams()).toEqual([]);
  });

  test("replayed initiation (same TAI64N) and initiation floods are rejected", () => {
    const net = new Pair();
    net.send("a");
    const init = net.a.dev.takeDatagrams()[0].data;
    net.b.dev.receiveDatagram(Uint8Array.from(init), net.a.ep);
    expect(net.b.dev.takeDatagrams().length).toBe(1);
    net.clock.t += 5000;
    net.b.dev.receiveDatagram(Uint8Array.from(init), net.a.ep);
    expect(net.b.dev.stats().drops.replayedTimestamp).toBe(1);
  });

  test("handshake flood: a newer initiation less than 20 ms after the last consumed one is rejected", () => {
    const net = new Pair();
    // Clones of A (same key) whose wall clocks run ahead, so their timestamps are newer.
    const clone = (ahead: number, seed: string) => {
      const d = new Device({ now: net.clock.now, wallNow: () => net.clock.wallNow() + ahead, random: seededRandom(seed) });
      d.applyConfig(config(net.a.priv, [peerUpdate(net.b.pub, { endpoint: net.b.ep, allowedIps: [{ address: "0.0.0.0", family: 4, bits: 0 }] })]));
      d.sendPacket(ipv4("192.168.4.1", "192.168.4.2"));
      return d.takeDatagrams()[0].data;
    };
    net.b.dev.receiveDatagram(clone(0, "c0"), net.a.ep);
    expect(net.b.dev.takeDatagrams().length).toBe(1);
    net.clock.t += 10;
    net.b.dev.receiveDatagram(clone(2000, "c1"), net.a.ep);
    expect(net.b.dev.stats().drops.handshakeFlood).toBe(1);
    expect(net.b.dev.takeDatagrams()).toEqual([]);
    net.clock.t += 30;
    net.b.dev.receiveDatagram(clone(3000, "c2"), net.a.ep);
    expect(net.b.dev.takeDatagrams().map((d) => d.data[0])).toEqual([RESP]);
  });

  test("all key material is zeroed 3 × REJECT_AFTER_TIME after the last session", () => {
    const net = established();
    net.send("a");
    const old = net.a.dev.takeDatagrams()[0].data;
    net.filter = () => false;
    net.advance(3 * REJECT_AFTER_TIME + 1000);
    net.b.dev.receiveDatagram(old, net.a.ep);
    // The session's index is gone entirely (not merely expired).
    expect(net.b.dev.stats().drops.unknownIndex).toBe(1);
  });

  test("malformed or truncated messages of each type are dropped and counted", () => {
    const net = new Pair();
    net.send("a");
    const init = net.a.dev.takeDatagrams()[0].data;
    const b = net.b.dev;
    b.receiveDatagram(init.subarray(0, 147), net.a.ep);
    const longInit = new Uint8Array(149); longInit.set(init); b.receiveDatagram(longInit, net.a.ep);
    const resp = new Uint8Array(91); resp[0] = 2; b.receiveDatagram(resp, net.a.ep);
    const cookie = new Uint8Array(63); cookie[0] = 3; b.receiveDatagram(cookie, net.a.ep);
    const data = new Uint8Array(31); data[0] = 4; b.receiveDatagram(data, net.a.ep);
    const t5 = new Uint8Array(40); t5[0] = 5; b.receiveDatagram(t5, net.a.ep);
    const reserved = Uint8Array.from(init); reserved[1] = 1; b.receiveDatagram(reserved, net.a.ep);
    b.receiveDatagram(new Uint8Array(0), net.a.ep);
    const badMac = Uint8Array.from(init); badMac[120] ^= 1; b.receiveDatagram(badMac, net.a.ep);
    const fullResp = new Uint8Array(92); fullResp[0] = 2; b.receiveDatagram(fullResp, net.a.ep);
    const fullCookie = new Uint8Array(64); fullCookie[0] = 3; b.receiveDatagram(fullCookie, net.a.ep);
    const fullData = new Uint8Array(64); fullData[0] = 4; b.receiveDatagram(fullData, net.a.ep);
    const d = b.stats().drops;
    expect(d.malformedInitiation).toBe(2);
    expect(d.malformedResponse).toBe(1);
    expect(d.malformedCookieReply).toBe(1);
    expect(d.malformedTransport).toBe(1);
    expect(d.unknownMessageType).toBe(3);
    expect(d.invalidMac1).toBe(2);
    expect(d.invalidCookieReply).toBe(1);
    expect(d.unknownIndex).toBe(1);
    expect(b.takeDatagrams()).toEqual([]);
  });
});

describe("configuration", () => {
  test("PSK mismatch: the handshake fails; matching PSKs work", () => {
    const psk = new Uint8Array(32).fill(7);
    const ok = established({ psk });
    expect(ok.a.dev.snapshot().peers[0].presharedKey).toEqual(psk);
    const net = new Pair({ psk });
    net.b.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.a.pub, { updateOnly: true, presharedKey: null })] });
    net.send("a");
    net.pump();
    expect(net.b.received.length).toBe(0);
    expect(net.a.dev.stats().drops.handshakeDecryptFailed).toBe(1);
  });

  test("remove, update_only, replace_allowed_ips, replace_peers and own-key peers", () => {
    const net = new Pair();
    const dev = net.a.dev;
    const other = x25519PublicKey(new Uint8Array(32).fill(9));
    dev.applyConfig({ replacePeers: false, peers: [peerUpdate(other, { updateOnly: true })] });
    expect(dev.snapshot().peers.length).toBe(1);
    dev.applyConfig({ replacePeers: false, peers: [peerUpdate(other, { allowedIps: [{ address: "10.9.0.0", family: 4, bits: 16 }] })] });
    expect(dev.snapshot().peers.length).toBe(2);
    dev.applyConfig({ replacePeers: false, peers: [peerUpdate(other, { replaceAllowedIps: true, allowedIps: [{ address: "10.8.0.0", family: 4, bits: 16 }] })] });
    expect(dev.snapshot().peers[1].allowedIps).toEqual([{ address: "10.8.0.0", family: 4, bits: 16 }]);
    dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.a.pub)] }); // our own key: ignored
    expect(dev.snapshot().peers.length).toBe(2);
    dev.applyConfig({ replacePeers: false, peers: [peerUpdate(other, { remove: true })] });
    expect(dev.snapshot().peers.map((p) => p.publicKey)).toEqual([net.b.pub]);
    dev.applyConfig({ replacePeers: true, peers: [] });
    expect(dev.snapshot().peers).toEqual([]);
  });

  test("changing the private key expires sessions (new handshake) and removes a peer with the new public key", () => {
    const net = established();
    // Re-key A with B's private key: peer B now equals our own public key and is removed.
    net.a.dev.applyConfig({ privateKey: net.b.priv, replacePeers: false, peers: [] });
    expect(net.a.dev.snapshot().peers).toEqual([]);
    const net2 = established();
    const fresh = new Uint8Array(32).fill(5);
    net2.a.dev.applyConfig({ privateKey: fresh, replacePeers: false, peers: [] });
    net2.send("a");
    // No data on the expired session: a new initiation at once, although the last one went
    // out less than REKEY_TIMEOUT ago (see device-lifecycle.test.ts).
    expect(net2.a.dev.takeDatagrams().map((d) => d.data[0])).toEqual([INIT]);
  });
});
