// Pure pieces: path hysteresis (betterAddr / notePong), magic endpoint encoding, DERP URLs,
// STUN targets, local addresses, home DERP hysteresis.
import { describe, expect, test } from "vitest";
import { Endpoint } from "@lattice/netaddr";
import type { DERPNode } from "@lattice/types";
import {
  betterAddr, derpDial, derpEndpoint, derpRegionOf, localAddresses, magicEndpoint, magicId, newStats, Netcheck, PeerState,
  stunHosts,
} from "../src/index.js";
import { newCandidate } from "../src/peer.js";
import { createBindingResponse, parseBindingRequest } from "@lattice/stun";
import { seeded } from "./sim.js";

const ep = (s: string) => Endpoint.parse(s)!;
const q = (key: string, latency: number) => {
  const c = newCandidate(ep(key), "netmap");
  c.latency = latency;
  return c;
};

describe("path hysteresis (endpoint.go betterAddr)", () => {
  test("a path must be more than 1% better to replace the current one", () => {
    expect(betterAddr(q("1.1.1.1:1", 9.95), q("2.2.2.2:1", 10))).toBe(false); // 0.5% better
    expect(betterAddr(q("1.1.1.1:1", 9.8), q("2.2.2.2:1", 10))).toBe(true); // 2% better
    expect(betterAddr(q("1.1.1.1:1", 10), q("1.1.1.1:1", 50))).toBe(false); // same address
  });

  test("bonus points: private beats a public path ~20% faster; loopback and IPv6 count", () => {
    expect(betterAddr(q("10.0.0.2:1", 10), q("1.1.1.1:1", 8.5))).toBe(true);
    expect(betterAddr(q("10.0.0.2:1", 10), q("1.1.1.1:1", 7))).toBe(false);
    expect(betterAddr(q("127.0.0.1:1", 10), q("10.0.0.2:1", 7))).toBe(true); // 5 vs 5.6 after points
    expect(betterAddr(q("[2001:db8::1]:1", 10), q("1.1.1.1:1", 9.5))).toBe(true);
  });

  test("notePong: switches only with enough gain while trusted; any pong wins once the best expired", () => {
    const p = new PeerState(1, magicEndpoint(1), new Uint8Array(32), "00", new Uint8Array(32), "11", 900);
    const a = newCandidate(ep("1.1.1.1:1"), "netmap");
    const b = newCandidate(ep("2.2.2.2:1"), "netmap");
    expect(p.notePong(a, 10, 1000)).toBe(true);
    expect(p.notePong(b, 9.95, 1100)).toBe(false); // within 1%: stay
    expect(p.best).toBe(a);
    expect(p.notePong(b, 5, 1200)).toBe(true);
    expect(p.best).toBe(b);
    expect(p.notePong(a, 50, 1200 + 6500)).toBe(true); // b untrusted (6.5 s): a alive
    expect(p.trusted(1200 + 6500 + 6499)).toBe(true);
    expect(p.trusted(1200 + 6500 + 6500)).toBe(false);
  });
});

describe("addresses", () => {
  test("magic endpoints: [100::id]:9, decoded without allocation; other endpoints are 0", () => {
    const m = magicEndpoint(0xdeadbeef);
    expect(m.toString()).toBe("[100::dead:beef]:9");
    expect(magicId(m.bytes)).toBe(0xdeadbeef);
    expect(magicId(ep("[100::dead:beef]:10").bytes)).toBe(0);
    expect(magicId(ep("[100:0:0:1::5]:9").bytes)).toBe(0);
    expect(magicId(ep("1.2.3.4:9").bytes)).toBe(0);
    expect(derpEndpoint(901).toString()).toBe("127.3.3.40:901");
    expect(derpRegionOf(derpEndpoint(901).bytes)).toBe(901);
    expect(derpRegionOf(ep("127.3.3.41:901").bytes)).toBe(0);
  });

  test("DERP URL: https://HostName[:port]/derp, IPv4 preferred, InsecureHTTP → http, InsecureForTests → no verify", () => {
    const n = (x: Partial<DERPNode>): DERPNode => ({ Name: "a", RegionID: 900, HostName: "derp.example", ...x });
    expect(derpDial(n({}))).toEqual({ url: "https://derp.example/derp", insecureSkipVerify: false });
    expect(derpDial(n({ DERPPort: 8443 })).url).toBe("https://derp.example:8443/derp");
    expect(derpDial(n({ IPv4: "192.0.2.1", InsecureForTests: true }))).toEqual({ url: "https://192.0.2.1/derp", insecureSkipVerify: true });
    expect(derpDial(n({ InsecureHTTP: true, DERPPort: 8080 })).url).toBe("http://derp.example:8080/derp");
    expect(derpDial(n({ InsecureHTTP: true })).url).toBe("http://derp.example/derp");
  });

  test("STUN targets: STUNPort 0 → 3478, −1 disabled, IPv4/IPv6 fields, else the host name", () => {
    const map = { Regions: { "900": { RegionID: 900, RegionCode: "a", RegionName: "a", Nodes: [
      { Name: "1", RegionID: 900, HostName: "h1", IPv4: "192.0.2.1", IPv6: "2001:db8::1" },
      { Name: "2", RegionID: 900, HostName: "h2", STUNPort: -1 },
      { Name: "3", RegionID: 900, HostName: "h3", STUNPort: 3479 },
    ] } } };
    expect(stunHosts(map)).toEqual([
      { region: 900, host: "192.0.2.1", port: 3478 }, { region: 900, host: "2001:db8::1", port: 3478 }, { region: 900, host: "h3", port: 3479 },
    ]);
  });

  test("local addresses: LAN (private) addresses included, loopback only when nothing else", () => {
    const iface = (address: string, family: "IPv4" | "IPv6", internal = false) => ({ address, family, internal, netmask: "", mac: "", cidr: null });
    expect(localAddresses({ lo: [iface("127.0.0.1", "IPv4", true)], eth0: [iface("10.1.2.3", "IPv4"), iface("fe80::1", "IPv6"), iface("2001:db8::5", "IPv6")] } as never))
      .toEqual(["10.1.2.3", "2001:db8::5"]);
    expect(localAddresses({ lo: [iface("127.0.0.1", "IPv4", true)] } as never)).toEqual(["127.0.0.1"]);
    // lattice0's own tailnet addresses are not endpoints (a peer would reach them through the tunnel).
    expect(localAddresses({ eth0: [iface("10.1.2.3", "IPv4")], lattice0: [iface("100.64.0.7", "IPv4"), iface("fd7a:115c:a1e0::7", "IPv6")] } as never)).toEqual(["10.1.2.3"]);
  });
});

describe("home DERP (netcheck.go hysteresis)", () => {
  function round(nc: Netcheck, now: number, lat: Record<number, number | null>): void {
    const pkts = nc.startRound(now);
    for (const p of pkts) {
      const region = p.to.port - 1000;
      const l = lat[region];
      if (l === null || l === undefined) continue;
      const tx = parseBindingRequest(p.data);
      if (!tx.ok) throw tx.error;
      nc.handleResponse(createBindingResponse(tx.value.transactionId, { family: 4, ip: Uint8Array.of(198, 51, 100, 7), port: 41641 }), p.to, now + l);
    }
    nc.finishIfDone(now + 3000);
  }
  const targets = [900, 901, 902].map((r) => ({ region: r, ep: Endpoint.fromAddress("192.0.2.1", r + 1000)! }));

  test("lowest latency wins; the old home stays unless the best is ≥10 ms and ⅓ faster", () => {
    const nc = new Netcheck(seeded("nc"), newStats());
    nc.configure([900, 901, 902], targets);
    round(nc, 0, { 900: 40, 901: 30, 902: 50 });
    expect(nc.home).toBe(901);
    expect(nc.report!.GlobalV4).toBe("198.51.100.7:41641");
    round(nc, 400_000, { 900: 25, 901: 30, 902: 50 }); // 5 ms better: keep
    expect(nc.home).toBe(901);
    round(nc, 800_000, { 900: 22, 901: 30, 902: 50 }); // 8 ms: keep
    expect(nc.home).toBe(901);
    round(nc, 1_200_000, { 900: 5, 901: 30, 902: 50 }); // 25 ms and < ⅔: switch
    expect(nc.home).toBe(900);
  });

  test("a single round without answers keeps the mapped address (no endpoint flap); two in a row drop it", () => {
    const nc = new Netcheck(seeded("nc3"), newStats());
    nc.configure([900], targets);
    round(nc, 0, { 900: 10 });
    expect(nc.mappedV4?.toString()).toBe("198.51.100.7:41641");
    round(nc, 30_000, {});
    expect(nc.mappedV4?.toString()).toBe("198.51.100.7:41641");
    expect(nc.report!.UDP).toBe(false);
    round(nc, 60_000, {});
    expect(nc.mappedV4).toBe(null);
  });

  test("no STUN answers (UDP blocked): the lowest region id, and an existing home is kept", () => {
    const nc = new Netcheck(seeded("nc2"), newStats());
    nc.configure([902, 901], targets);
    round(nc, 0, {});
    expect(nc.home).toBe(901);
    expect(nc.report).toMatchObject({ UDP: false, PreferredDERP: 901, MappingVariesByDestIP: null });
    round(nc, 1000, { 902: 10 });
    expect(nc.home).toBe(902);
    round(nc, 2000, {});
    expect(nc.home).toBe(902);
  });
});
