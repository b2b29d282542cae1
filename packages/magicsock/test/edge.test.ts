// MagicSock as a real WireGuard Device's Bind: real UDP sockets on loopback, a real
// in-process DERP relay (@lattice/derp core behind node:http), two Devices exchanging
// packets directly (after disco) and via DERP with UDP blocked.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, test } from "vitest";
import { x25519PublicKey } from "@lattice/crypto";
import type { Endpoint } from "@lattice/netaddr";
import type { DERPMap } from "@lattice/types";
import { UdpBind } from "@lattice/udp";
import { type Bind, Device } from "@lattice/wireguard";
import { MagicSock } from "../src/index.js";
import { silentLog } from "./sim.js";
import { startDerp, type TestDerp } from "./derp-server.js";

const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function ipv4(src: string, dst: string, tag: number): Uint8Array {
  const p = new Uint8Array(60).fill(tag);
  p[0] = 0x45; p[1] = 0; p[2] = 0; p[3] = 60; p[8] = 64; p[9] = 17;
  p.set(src.split(".").map(Number), 12);
  p.set(dst.split(".").map(Number), 16);
  return p;
}

/** A bind that sends nothing (UDP blocked by a firewall). */
class BlockedUdp extends UdpBind {
  override send(_d: readonly Uint8Array[], _t: readonly Endpoint[], n: number): number {
    return n;
  }
}

interface Node {
  readonly ms: MagicSock;
  readonly dev: Device;
  readonly pub: Uint8Array;
  readonly priv: Uint8Array;
  readonly ip: string;
  readonly got: Uint8Array[];
}

function node(ip: string, map: DERPMap, blocked: boolean): Node {
  const priv = random(32);
  const dev = new Device({ now: () => performance.now(), random, roaming: false });
  const got: Uint8Array[] = [];
  const ms = new MagicSock({
    now: () => performance.now(), random, log: silentLog, discoPrivate: random(32), localAddresses: () => ["127.0.0.1"],
    ...(blocked ? { createUdp: (): Bind => new BlockedUdp() } : {}),
  });
  const drain = (): void => {
    const out = dev.takeDatagrams();
    if (out.length > 0) ms.send(out.map((o) => o.data), out.map((o) => o.to), out.length);
    for (const p of dev.takePackets()) got.push(Uint8Array.from(p));
  };
  ms.open(0, {
    onReceive: (d, f, n) => {
      for (let i = 0; i < n; i++) dev.receiveDatagram(d[i]!, f[i]!);
      drain();
    },
    onError: () => {},
  });
  const timer = setInterval(() => {
    dev.tick();
    drain();
  }, 50);
  cleanups.push(() => clearInterval(timer), () => ms.close());
  ms.setNodePrivateKey(priv);
  ms.setDerpMap(map);
  const n: Node = { ms, dev, pub: x25519PublicKey(priv), priv, ip, got };
  (n as { send?: (to: Node, tag: number) => void }).send = (to, tag) => {
    dev.sendPacket(ipv4(ip, to.ip, tag));
    drain();
  };
  return n;
}

const send = (a: Node, b: Node, tag: number) => (a as unknown as { send: (to: Node, tag: number) => void }).send(b, tag);

function connect(a: Node, b: Node, viaUdp: boolean): void {
  for (const [x, y] of [[a, b], [b, a]] as const) {
    x.ms.setPeers([{ nodeKey: y.pub, discoKey: y.ms.discoPublic, endpoints: viaUdp ? [`127.0.0.1:${y.ms.port}`] : [], homeDerp: 900 }]);
    x.dev.applyConfig({
      privateKey: x.priv, replacePeers: true,
      peers: [{ publicKey: y.pub, remove: false, updateOnly: false, replaceAllowedIps: true, endpoint: x.ms.peerEndpoint(y.pub), allowedIps: [{ address: y.ip, family: 4, bits: 32 }] }],
    });
  }
}

async function until(what: string, f: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function relay(): Promise<{ derp: TestDerp; map: DERPMap }> {
  const derp = await startDerp();
  cleanups.push(() => derp.close());
  const map: DERPMap = { Regions: { "900": { RegionID: 900, RegionCode: "t", RegionName: "test", Nodes: [
    { Name: "900a", RegionID: 900, HostName: "127.0.0.1", DERPPort: derp.port, InsecureHTTP: true, STUNPort: -1 },
  ] } } };
  return { derp, map };
}

describe("MagicSock under real WireGuard devices", () => {
  test("handshake and data over DERP first, then a direct UDP path after disco", async () => {
    const { map } = await relay();
    const a = node("100.64.0.1", map, false);
    const b = node("100.64.0.2", map, false);
    await until("both on home DERP 900", () => a.ms.derpConnected().includes(900) && b.ms.derpConnected().includes(900));
    connect(a, b, true);
    send(a, b, 1);
    await until("first packet", () => b.got.length === 1);
    expect(b.ms.stats().derpRecvWireGuard).toBeGreaterThan(0); // the handshake came via DERP
    await until("direct path", () => a.ms.peerPath(b.pub)!.curAddr === `127.0.0.1:${b.ms.port}` && b.ms.peerPath(a.pub)!.curAddr !== "");
    const udpBefore = b.ms.stats().udpRecvWireGuard;
    for (let i = 0; i < 20; i++) send(a, b, 2 + i);
    await until("20 direct packets", () => b.got.length === 21);
    expect(b.ms.stats().udpRecvWireGuard - udpBefore).toBeGreaterThanOrEqual(20);
    expect(b.got[20]![20]).toBe(21);
    send(b, a, 99);
    await until("reply", () => a.got.length === 1);
    // Roaming off: the devices still address each other by magic endpoint.
    expect(b.dev.snapshot().peers[0]!.endpoint!.toString()).toBe(b.ms.peerEndpoint(a.pub).toString());
  });

  test("UDP blocked: the devices handshake and exchange data via DERP only", async () => {
    const { derp, map } = await relay();
    const a = node("100.64.0.1", map, true);
    const b = node("100.64.0.2", map, true);
    await until("both on home DERP 900", () => a.ms.derpConnected().includes(900) && b.ms.derpConnected().includes(900));
    expect(a.ms.homeDerp()).toBe(900);
    connect(a, b, true);
    for (let i = 0; i < 10; i++) send(a, b, i);
    await until("10 packets via DERP", () => b.got.length === 10);
    send(b, a, 7);
    await until("reply via DERP", () => a.got.length === 1);
    expect(b.ms.stats().udpRecvWireGuard).toBe(0);
    expect(b.ms.stats().derpRecvWireGuard).toBeGreaterThanOrEqual(10);
    expect(a.ms.peerPath(b.pub)).toMatchObject({ curAddr: "", derpRegionId: 900 });
    expect(derp.server.stats.packetsRecv).toBeGreaterThan(10);
  });

  test("relay unreachable (control down, restart from the saved netmap): the first packet goes to the candidates and arrives before the 5 s handshake retry", async () => {
    const deadRelay: DERPMap = { Regions: { "900": { RegionID: 900, RegionCode: "t", RegionName: "down", Nodes: [
      { Name: "900a", RegionID: 900, HostName: "127.0.0.1", DERPPort: 9, InsecureHTTP: true, STUNPort: -1 },
    ] } } };
    const a = node("100.64.0.1", deadRelay, false);
    const b = node("100.64.0.2", deadRelay, false);
    connect(a, b, true);
    send(a, b, 1);
    // 4 s: before WireGuard's REKEY_TIMEOUT retry, which would deliver it once disco verified a path.
    await until("first packet without a relay", () => b.got.length === 1, 4000);
    expect(a.ms.stats().sendBlind).toBeGreaterThan(0);
  });
});
