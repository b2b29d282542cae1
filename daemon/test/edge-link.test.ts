/**
 * The edge and the link state, with a real TUN in private namespaces: a packet for a
 * down link is dropped (not fatal), the device follows `ip link set down/up` and a move
 * to another namespace and back, and single-packet I/O errors are counted and logged
 * once.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { TunDevice } from "@lattice/tun";
import { BatchUdpSocket, UdpBind } from "@lattice/udp";
import { Endpoint } from "@lattice/netaddr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WgEdge } from "../src/wg/edge.js";
import { createLogger } from "../src/wg/log.js";
import { ScriptedDevice, udpPacket, until } from "./edge-helpers.js";

const isRoot = process.getuid?.() === 0;
const ns1 = `llink1-${process.pid}`;
const ns2 = `llink2-${process.pid}`;
const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8" });

/** Packets the interface has received (what the edge wrote to the TUN), in namespace `ns`. */
function rxPackets(ns: string, ifname: string): number {
  const j = JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", ifname)) as Array<{ stats64: { rx: { packets: number } } }>;
  return j[0]!.stats64.rx.packets;
}

describe.runIf(isRoot)("WgEdge and the link state (root, private netns)", () => {
  beforeAll(() => {
    ip("netns", "add", ns1);
    ip("netns", "add", ns2);
  });
  afterAll(() => {
    spawnSync("ip", ["netns", "del", ns1]);
    spawnSync("ip", ["netns", "del", ns2]);
  });

  it("a packet while the link is down is dropped, not fatal; the device follows down/up and a namespace move and back", async () => {
    const tun = TunDevice.open({ name: `ltl${process.pid}`.slice(0, 15), mtu: 1420 });
    const name = tun.name;
    const bringUp = (ns: string): void => {
      ip("-n", ns, "addr", "add", "10.81.0.1/24", "dev", name);
      ip("-n", ns, "link", "set", name, "up");
    };
    ip("link", "set", name, "netns", ns1);
    bringUp(ns1);
    const peer = BatchUdpSocket.bind({ port: 0 });
    peer.start({ onDatagrams() {}, onError() {} });
    const now = (): number => performance.now();
    const dev = new ScriptedDevice(Endpoint.fromAddress("127.0.0.1", peer.port)!, now);
    const lines: string[] = [];
    let fatal: Error | null = null;
    const edge = new WgEdge({
      device: dev,
      tun,
      now,
      log: createLogger("info", "", { write: (s: string) => lines.push(s) }),
      createBind: () => new UdpBind(),
      onFatal: (e) => (fatal = e),
    });
    const toEdge = (msg: string): void => void peer.send([Buffer.from(msg)], [Endpoint.fromAddress("127.0.0.1", edge.port)!]);
    const packet = `packet:${Buffer.from(udpPacket("hello")).toString("hex")}`;
    const deliver = async (ns: string): Promise<void> => {
      const before = rxPackets(ns, name);
      toEdge(packet);
      await until(() => rxPackets(ns, name) === before + 1);
    };
    try {
      edge.start(0);
      expect(dev.upCalls).toEqual([]); // the link is up: nothing to change
      expect(dev.applied[0]!.listenPort).toBe(edge.port); // the device learns its port
      await deliver(ns1);

      // Down, then a packet for the TUN: write() fails with EIO → dropped, the device goes down at once.
      ip("-n", ns1, "link", "set", name, "down");
      toEdge(packet);
      await until(() => edge.stats.tunDropped === 1);
      expect(dev.upCalls).toEqual([false]);
      toEdge(packet);
      await until(() => edge.stats.tunDropped === 2);
      expect(fatal).toBeNull();
      expect(lines.filter((l) => l.includes("TUN write failed (EIO)")).length).toBe(1); // logged once
      expect(lines.some((l) => l.includes(`Interface ${name} is down`))).toBe(true);

      // Up again: followed within the 1 s poll, traffic resumes.
      ip("-n", ns1, "link", "set", name, "up");
      await until(() => dev.upCalls.length === 2, 3_000);
      expect(dev.upCalls).toEqual([false, true]);
      await deliver(ns1);

      // Moved to another namespace (it arrives down), up there, then back.
      ip("-n", ns1, "link", "set", name, "netns", ns2);
      await until(() => dev.upCalls.at(-1) === false, 3_000);
      bringUp(ns2);
      await until(() => dev.upCalls.at(-1) === true, 3_000);
      await deliver(ns2);
      ip("-n", ns2, "link", "set", name, "netns", ns1);
      await until(() => dev.upCalls.at(-1) === false, 3_000);
      bringUp(ns1);
      await until(() => dev.upCalls.at(-1) === true, 3_000);
      await deliver(ns1);
      expect(edge.stats.linkDowns).toBe(3);
      expect(edge.stats.linkUps).toBe(3);
      expect(fatal).toBeNull();

      // A datagram the kernel refuses (EMSGSIZE) is dropped and counted, logged once.
      const dropped = edge.stats.udpDropped;
      toEdge("huge");
      await until(() => edge.stats.udpDropped === dropped + 1);
      toEdge("huge");
      await until(() => edge.stats.udpDropped === dropped + 2);
      expect(lines.filter((l) => l.includes("UDP send failed (EMSGSIZE)")).length).toBe(1);
      toEdge("echo");
      await until(() => dev.received.some((r) => r.text === "echo"));

      // Deleting the interface still ends the edge.
      ip("-n", ns1, "link", "del", name);
      await until(() => fatal !== null);
      expect((fatal as unknown as { code: string }).code).toBe("ERR_TUN_GONE");
    } finally {
      edge.close();
      peer.close();
    }
  });
});
