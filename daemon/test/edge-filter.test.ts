/**
 * WgEdge's optional packet hook (latticed's filter): refused packets are dropped and
 * counted in both directions, accepted ones pass unchanged, a throwing hook refuses,
 * inject() reaches the device without the outbound hook — and without a hook the edge
 * behaves as before (lattice-wg).
 */
import { describe, expect, it } from "vitest";
import { WgEdge, type EdgeFilter } from "../src/wg/edge.js";
import { createLogger } from "../src/wg/log.js";
import { ScriptedDevice, text, udpPacket } from "./edge-helpers.js";
import { FakeNet, FakeTun, fakeEp, type FakeBind } from "./fakes.js";

function setup(filter?: EdgeFilter) {
  const net = new FakeNet();
  const tun = new FakeTun();
  const dev = new ScriptedDevice(fakeEp(51820), () => 0);
  const binds: FakeBind[] = [];
  const edge = new WgEdge({
    device: dev,
    tun,
    now: () => 0,
    log: createLogger("silent", "", { write: () => {} }),
    createBind: () => {
      const b = net.bind();
      binds.push(b);
      return b;
    },
    onFatal: () => {},
    ...(filter ? { filter } : {}),
  });
  edge.start(0);
  return { tun, dev, edge, bind: () => binds[0]! };
}

const payload = (p: Uint8Array) => text(p).slice(28);
const inbound = (s: string) => Buffer.from(`packet:${Buffer.from(udpPacket(s)).toString("hex")}`);

describe("WgEdge filter hook", () => {
  it("drops and counts what the hook refuses, both directions", () => {
    const seen: string[] = [];
    const { tun, dev, edge, bind } = setup({
      inbound: (p) => (seen.push(`in ${payload(p)}`), payload(p) !== "bad-in"),
      outbound: (p) => (seen.push(`out ${payload(p)}`), payload(p) !== "bad-out"),
    });
    try {
      tun.inject([udpPacket("ok-out"), udpPacket("bad-out"), udpPacket("ok-out2")]);
      expect(dev.fromTun.map(payload)).toEqual(["ok-out", "ok-out2"]);
      bind().deliver([inbound("ok-in"), inbound("bad-in")], [fakeEp(1), fakeEp(1)]);
      expect(tun.written.map(payload)).toEqual(["ok-in"]);
      expect(edge.stats.filteredOut).toBe(1);
      expect(edge.stats.filteredIn).toBe(1);
      expect(seen).toEqual(["out ok-out", "out bad-out", "out ok-out2", "in ok-in", "in bad-in"]);
    } finally {
      edge.close();
    }
  });

  it("a throwing hook refuses the packet and the edge goes on", () => {
    const { tun, dev, edge } = setup({
      inbound: () => true,
      outbound: (p) => {
        if (payload(p) === "boom") throw new Error("hook bug");
        return true;
      },
    });
    try {
      tun.inject([udpPacket("boom"), udpPacket("fine")]);
      expect(dev.fromTun.map(payload)).toEqual(["fine"]);
      expect(edge.stats.filteredOut).toBe(1);
      expect(edge.stats.deviceErrors).toBe(1);
    } finally {
      edge.close();
    }
  });

  it("inject() hands packets to the device (not through the outbound hook) and sends them", () => {
    const { dev, edge, bind } = setup({ inbound: () => true, outbound: () => false });
    try {
      edge.inject([udpPacket("ping")]);
      expect(dev.fromTun.map(payload)).toEqual(["ping"]);
      expect(bind().sent.map((s) => payload(s.data))).toEqual(["ping"]);
    } finally {
      edge.close();
    }
  });

  it("without a hook every packet passes (lattice-wg unchanged)", () => {
    const { tun, dev, edge, bind } = setup();
    try {
      tun.inject([udpPacket("a")]);
      bind().deliver([inbound("b")], [fakeEp(1)]);
      expect(dev.fromTun.map(payload)).toEqual(["a"]);
      expect(tun.written.map(payload)).toEqual(["b"]);
      expect(edge.stats.filteredIn + edge.stats.filteredOut).toBe(0);
    } finally {
      edge.close();
    }
  });
});
