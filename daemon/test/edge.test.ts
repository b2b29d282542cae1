/**
 * The I/O edge with a real TUN (in a private netns) and real UDP sockets around a
 * scripted stand-in device: batches flow TUN → device → UDP and UDP → device → TUN, the
 * timer follows nextDeadline, listen_port rebinds, a throwing device is survived, and
 * deleting the interface is reported.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { TunDevice, packetAt } from "@lattice/tun";
import { BatchUdpSocket, UdpBind, endpointAt } from "@lattice/udp";
import { Endpoint } from "@lattice/netaddr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WgEdge } from "../src/wg/edge.js";
import { createLogger } from "../src/wg/log.js";
import { ScriptedDevice, text, udpPacket, until } from "./edge-helpers.js";

const isRoot = process.getuid?.() === 0;
const ns = `ledge-${process.pid}`;
const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8" });

describe.runIf(isRoot)("WgEdge (root, private netns)", () => {
  beforeAll(() => void ip("netns", "add", ns));
  afterAll(() => void spawnSync("ip", ["netns", "del", ns]));

  it("moves batches between TUN, device and UDP, runs the timer, rebinds, survives device errors", async () => {
    const tun = TunDevice.open({ name: `lte${process.pid}`.slice(0, 15), mtu: 1420 });
    ip("link", "set", tun.name, "netns", ns);
    ip("-n", ns, "addr", "add", "10.81.0.1/24", "dev", tun.name);
    ip("-n", ns, "link", "set", tun.name, "up");
    const peer = BatchUdpSocket.bind({ port: 0 });
    const atPeer: { text: string; bytes: number; from: number; fromAddr: string }[] = [];
    peer.start({
      onDatagrams(b) {
        for (let i = 0; i < b.count; i++) {
          const from = endpointAt(b, i);
          atPeer.push({ text: text(packetAt(b, i)), bytes: b.lengths[i]!, from: from.port, fromAddr: from.address });
        }
      },
      onError() {},
    });
    const now = (): number => performance.now();
    const dev = new ScriptedDevice(Endpoint.fromAddress("127.0.0.1", peer.port)!, now);
    let fatal: Error | null = null;
    const edge = new WgEdge({
      device: dev,
      tun,
      now,
      log: createLogger("silent", "", { write: () => true }),
      createBind: () => new UdpBind(),
      onFatal: (e) => (fatal = e),
    });
    try {
      edge.start(0);
      expect(edge.port).toBeGreaterThan(0);
      const toEdge = (msg: string): void => void peer.send([Buffer.from(msg)], [Endpoint.fromAddress("127.0.0.1", edge.port)!]);

      // TUN → device → UDP: pings from the netns arrive at the peer as datagrams.
      spawnSync("ip", ["netns", "exec", ns, "ping", "-c", "3", "-i", "0.05", "-W", "0.2", "10.81.0.9"]);
      await until(() => atPeer.length >= 3);
      const icmp = atPeer.filter((d) => d.bytes === 84);
      expect(icmp.length).toBeGreaterThanOrEqual(3);
      expect(icmp[0]!.from).toBe(edge.port);
      expect(dev.fromTun.length).toBeGreaterThanOrEqual(3);

      // UDP → device (which throws once) → TUN: the edge keeps going.
      toEdge("boom");
      await until(() => edge.stats.deviceErrors === 1);
      const rx0 = (JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", tun.name)) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets;
      toEdge(`packet:${Buffer.from(udpPacket("hello")).toString("hex")}`);
      await until(() => dev.received.some((r) => r.text === "packet"));
      // The endpoint carries the local address the datagram arrived at (sticky source).
      const got = dev.received.find((r) => r.text === "packet")!.from;
      expect({ family: got.family, address: got.address, port: got.port, src: got.src }).toEqual({ family: 4, address: "127.0.0.1", port: peer.port, src: { address: "127.0.0.1", ifindex: 1 } });

      // Sticky source both ways: sent to 127.0.0.2 (loopback, not the default source for
      // 127.0.0.1), the device's reply to `from` leaves from 127.0.0.2.
      peer.send([Buffer.from("echo")], [Endpoint.fromAddress("127.0.0.2", edge.port)!]);
      await until(() => atPeer.some((d) => d.text === "echoed"));
      expect(dev.received.find((r) => r.text === "echo")!.from.src).toEqual({ address: "127.0.0.2", ifindex: 1 });
      expect(atPeer.find((d) => d.text === "echoed")!.fromAddr).toBe("127.0.0.2");
      const rx1 = (JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", tun.name)) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets;
      expect(rx1 - rx0).toBe(1);

      // Timer: the device asks for a tick 30 ms later; the edge calls it once.
      const t0 = now();
      toEdge("arm");
      await until(() => atPeer.some((d) => d.text === "tick"));
      expect(dev.ticks).toBe(1);
      expect(now() - t0).toBeGreaterThanOrEqual(25);

      // listen_port: rebinding to a free port, then EADDRINUSE for a taken one.
      const taken = BatchUdpSocket.bind({ port: 0 });
      const free = BatchUdpSocket.bind({ port: 0 });
      const freePort = free.port;
      free.close();
      edge.apply({ listenPort: freePort, replacePeers: false, peers: [] });
      expect(edge.port).toBe(freePort);
      expect(dev.applied.at(-1)!.listenPort).toBe(freePort);
      expect(edge.snapshot().listenPort).toBe(freePort);
      expect(() => edge.apply({ listenPort: taken.port, replacePeers: false, peers: [] })).toThrow(expect.objectContaining({ errno: 98 }));
      expect(edge.port).toBe(freePort);
      taken.close();
      toEdge("after-rebind");
      await until(() => dev.received.some((r) => r.text === "after-rebind"));

      // Deleting the interface is fatal with ERR_TUN_GONE.
      ip("-n", ns, "link", "del", tun.name);
      await until(() => fatal !== null);
      expect((fatal as unknown as { code: string }).code).toBe("ERR_TUN_GONE");
    } finally {
      edge.close();
      peer.close();
    }
  });
});
