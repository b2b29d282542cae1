// The engine drops packets from a peer whose source is a MagicDNS address (100.100.100.100,
// fd7a:115c:a1e0::53) even when the packet filter would accept them: only latticed's own
// hairpin may speak from quad-100 to the host (magicdns-tcp.ts trusts that source).
import { describe, expect, it } from "vitest";
import type { MapResponse, Node } from "@lattice/types";
import { Engine } from "../../src/latticed/engine.js";
import type { MagicConn } from "../../src/latticed/magic.js";
import { Netmap } from "../../src/latticed/netmap.js";
import { buildUdp } from "../../src/latticed/udp-packet.js";
import { createLogger } from "../../src/wg/log.js";
import { ScriptedDevice, until } from "../edge-helpers.js";
import { FakeNet, FakeTun, fakeEp } from "../fakes.js";
import { Endpoint } from "@lattice/netaddr";

/** An IPv4 UDP packet src:53 → 100.64.0.1:9 with `payload` (latticed's own builder). */
function udp4(src: number[], payload: string): Uint8Array {
  return buildUdp(new Uint8Array(src), new Uint8Array([100, 64, 0, 1]), 53, 9, Buffer.from(payload));
}

function fakeMagic(net: FakeNet): MagicConn {
  const bind = net.bind();
  return Object.assign(bind, {
    setNodePrivateKey: () => {},
    setDerpMap: () => {},
    setPeers: () => {},
    peerEndpoint: () => Endpoint.fromAddress("192.0.2.9", 1)!,
    ping: async () => ({}) as never,
    peerPath: () => undefined,
    endpoints: () => [],
    homeDerp: () => 0,
    netcheck: async () => ({}) as never,
    stats: () => ({}),
  }) as unknown as MagicConn;
}

describe("engine inbound: quad-100 source addresses from peers", () => {
  it("are dropped and counted although the filter accepts everything; other packets pass", async () => {
    const net = new FakeNet();
    const tun = new FakeTun();
    const magic = fakeMagic(net);
    const dev = new ScriptedDevice(fakeEp(51820), () => 0);
    const engine = new Engine({
      tun, device: dev, magic, tunConfig: { up: async () => {}, setAddresses: async () => {} },
      now: () => 0, random: (n) => new Uint8Array(n), log: createLogger("silent", "", { write: () => {} }), onFatal: () => {},
    });
    try {
      await engine.start(0);
      const self = { ID: 1, StableID: "n1", Name: "alpha.tail.example.", User: 1, Key: `nodekey:${"1".padStart(64, "0")}`, Addresses: ["100.64.0.1/32"], AllowedIPs: [] } as unknown as Node;
      const resp = { Node: self, Domain: "tail.example", PacketFilter: [{ SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] }] } as unknown as MapResponse;
      await engine.configure(Netmap.fromFull(resp, 0)!, new Uint8Array(32).fill(7));
      const datagram = (p: Uint8Array) => Buffer.from(`packet:${Buffer.from(p).toString("hex")}`);
      (magic as unknown as { deliver: (d: Uint8Array[], f: Endpoint[]) => void }).deliver(
        [datagram(udp4([100, 100, 100, 100], "forged")), datagram(udp4([100, 64, 0, 2], "fine"))],
        [fakeEp(1), fakeEp(1)],
      );
      await until(() => tun.written.length >= 1);
      await new Promise((r) => setTimeout(r, 20));
      expect(tun.written.map((p) => Buffer.from(p.subarray(28)).toString())).toEqual(["fine"]);
      expect(engine.droppedQuad100Source).toBe(1);
    } finally {
      engine.close();
    }
  });
});
