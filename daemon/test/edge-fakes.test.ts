/**
 * The I/O edge on in-memory fakes (no root, no kernel): it takes the Tun and Bind
 * interfaces, so the data path, rebinding, fwmark, link following and fatal errors are
 * checked with a scripted device and byte-exact endpoints.
 */
import { describe, expect, it } from "vitest";
import { clampScalar, x25519PublicKey } from "@lattice/crypto";
import { Endpoint } from "@lattice/netaddr";
import { UapiError } from "@lattice/wireguard";
import { WgEdge } from "../src/wg/edge.js";
import { createLogger } from "../src/wg/log.js";
import { createWgDevice } from "../src/wg/device.js";
import { ScriptedDevice, text, udpPacket, until } from "./edge-helpers.js";
import { FakeNet, FakeTun, fakeEp, type FakeBind } from "./fakes.js";

function setup() {
  const net = new FakeNet();
  const tun = new FakeTun();
  const peer = fakeEp(51820);
  let t = 0;
  const now = (): number => t;
  const dev = new ScriptedDevice(peer, now);
  const lines: string[] = [];
  const fatal: Error[] = [];
  const binds: FakeBind[] = [];
  const edge = new WgEdge({
    device: dev,
    tun,
    now,
    log: createLogger("info", "", { write: (s: string) => lines.push(s) }),
    createBind: () => {
      const b = net.bind();
      binds.push(b);
      return b;
    },
    onFatal: (e) => fatal.push(e),
  });
  return { net, tun, peer, dev, edge, lines, fatal, binds, advance: (ms: number) => (t += ms) };
}

describe("WgEdge on fake Tun and Bind", () => {
  it("moves TUN batches to the bind and received datagrams to the TUN, endpoints intact", () => {
    const { tun, peer, dev, edge, binds } = setup();
    try {
      edge.start(0);
      const bind = binds[0]!;
      expect(edge.port).toBe(bind.port);
      expect(dev.applied[0]!.listenPort).toBe(bind.port);

      // TUN → device → Bind: one send batch, to the device's endpoint object (no text round trip).
      const p1 = udpPacket("one");
      const p2 = udpPacket("two");
      tun.inject([p1, p2]);
      expect(bind.sent.map((s) => text(s.data).slice(28))).toEqual(["one", "two"]);
      expect(bind.sent[0]!.to).toBe(peer);
      // The packets the device kept are copies: the TUN's read buffer was overwritten after the batch.
      expect(text(dev.fromTun[0]!).slice(28)).toBe("one");

      // Bind → device → TUN, and the endpoint (with its sticky source) reaches the device as given.
      const from = fakeEp(3333, "198.51.100.4", "192.0.2.1");
      bind.deliver([Buffer.from(`packet:${Buffer.from(udpPacket("in")).toString("hex")}`), Buffer.from("echo")], [from, from]);
      expect(tun.written.map((p) => text(p).slice(28))).toEqual(["in"]);
      expect(dev.received.map((r) => r.from)).toEqual([from, from]);
      expect(dev.received[0]!.from).toBe(from);
      expect(bind.sent.at(-1)!.to).toBe(from); // the reply goes to the endpoint it came from
      expect(bind.sent.at(-1)!.to.src).toEqual({ address: "192.0.2.1", ifindex: 2 });
    } finally {
      edge.close();
    }
  });

  it("rebinds to a new port before closing the old one; a port in use changes nothing; fwmark follows", () => {
    const { net, dev, edge, binds } = setup();
    try {
      edge.start(0);
      const first = binds[0]!;
      edge.apply({ fwmark: 7, replacePeers: false, peers: [] });
      expect(first.mark).toBe(7);
      const busy = net.bind();
      busy.open(45000, { onReceive() {}, onError() {} });
      expect(() => edge.apply({ listenPort: 45000, replacePeers: false, peers: [] })).toThrow(UapiError);
      expect(edge.port).toBe(first.port);
      expect(first.closed).toBe(false);
      edge.apply({ listenPort: 45001, replacePeers: false, peers: [] });
      const second = binds.at(-1)!;
      expect(edge.port).toBe(45001);
      expect(second.mark).toBe(7); // the mark carries over to the new bind
      expect(first.closed).toBe(true);
      expect(dev.applied.at(-1)!.listenPort).toBe(45001);
      expect(edge.snapshot().fwmark).toBe(7);
    } finally {
      edge.close();
    }
  });

  it("runs the device's timer and survives a throwing device", async () => {
    const { dev, edge, binds, advance } = setup();
    try {
      edge.start(0);
      const bind = binds[0]!;
      bind.deliver([Buffer.from("boom")], [fakeEp(1)]);
      expect(edge.stats.deviceErrors).toBe(1);
      bind.deliver([Buffer.from("arm")], [fakeEp(1)]);
      advance(30);
      await new Promise((r) => setTimeout(r, 60));
      expect(dev.ticks).toBe(1);
      expect(bind.sent.some((s) => text(s.data) === "tick")).toBe(true);
    } finally {
      edge.close();
    }
  });

  it("a TUN write refused with EIO takes the device down at once; a failing bind ends the edge", () => {
    const { tun, dev, edge, binds, fatal, lines } = setup();
    edge.start(0);
    const bind = binds[0]!;
    tun.up = false;
    const pkt = Buffer.from(`packet:${Buffer.from(udpPacket("x")).toString("hex")}`);
    bind.deliver([pkt], [fakeEp(1)]);
    expect(edge.stats.tunDropped).toBe(1);
    expect(dev.upCalls).toEqual([false]);
    expect(lines.filter((l) => l.includes("TUN write failed (EIO)")).length).toBe(1);
    bind.receiver!.onError(new Error("socket broken"));
    expect(fatal.map((e) => e.message)).toEqual(["socket broken"]);
    expect(bind.closed).toBe(true);
    expect(tun.closed).toBe(true);
  });
});

describe("two lattice-wg edges with real devices over fakes", () => {
  it("handshake and a packet end to end through Bind and Tun, no root", async () => {
    const net = new FakeNet();
    const mk = (seed: number) => {
      const tun = new FakeTun();
      const device = createWgDevice({ now: () => performance.now(), mtu: 1420 });
      const fatal: Error[] = [];
      const edge = new WgEdge({
        device,
        tun,
        now: () => performance.now(),
        log: createLogger("silent", "", { write: () => true }),
        createBind: () => net.bind(),
        onFatal: (e) => fatal.push(e),
      });
      const priv = new Uint8Array(32).fill(seed);
      return { tun, edge, fatal, priv, pub: x25519PublicKey(clampScalar(priv)) };
    };
    const a = mk(1);
    const b = mk(2);
    try {
      a.edge.start(0);
      b.edge.start(0);
      const v4 = (address: string) => ({ address, family: 4 as const, bits: 32 });
      const peer = (pub: Uint8Array, ip: string, port?: number) => ({
        publicKey: pub, remove: false, updateOnly: false, replaceAllowedIps: true, allowedIps: [v4(ip)],
        ...(port === undefined ? {} : { endpoint: Endpoint.fromAddress(net.address, port)! }),
      });
      a.edge.apply({ privateKey: a.priv, replacePeers: true, peers: [peer(b.pub, "10.81.0.1", b.edge.port)] });
      b.edge.apply({ privateKey: b.priv, replacePeers: true, peers: [peer(a.pub, "10.81.0.2")] });
      a.tun.inject([udpPacket("through the tunnel")]);
      await until(() => b.tun.written.length === 1);
      expect(text(b.tun.written[0]!).slice(28)).toBe("through the tunnel");
      // B learned A's endpoint from the handshake (roaming), with the sticky source.
      const ep = b.edge.snapshot().peers[0]!.endpoint!;
      expect(ep.toString()).toBe(`${net.address}:${a.edge.port}`);
      expect(ep.src).toEqual({ address: net.address, ifindex: 1 });
      expect(b.edge.snapshot().peers[0]!.lastHandshakeTimeSec).toBeGreaterThan(0);
      expect([...a.fatal, ...b.fatal]).toEqual([]);
    } finally {
      a.edge.close();
      b.edge.close();
    }
  });
});
