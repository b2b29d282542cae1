// Subnet routes and exit nodes, the pure half: AdvertiseRoutes validation (through the
// prefs parsers, as the LocalAPI uses them), per-peer AllowedIPs selection, the filter's
// local nets, choosing/suggesting an exit node, the router config and the forwarding
// Health line, and the status fields.
import { describe, expect, it } from "vitest";
import type { Node } from "@lattice/types";
import { Filter } from "@lattice/filter";
import { parsePrefsPatch, parseUpRequest, loadPrefs, defaultPrefs } from "../../src/latticed/prefs.js";
import { applyExitChoice, exitNodeHealth, filterLocalNets, peerAllowedIps, suggestExitNode, NO_ROUTES } from "../../src/latticed/routes.js";
import { FORWARDING_FILES, FORWARDING_OFF_HEALTH, RouteManager, bypassHosts, routerConfig } from "../../src/latticed/route-manager.js";
import { buildStatus } from "../../src/latticed/status.js";
import { Netmap } from "../../src/latticed/netmap.js";
import { LatticedError } from "../../src/latticed/errors.js";

function node(id: number, extra: Partial<Node> = {}): Node {
  const addrs = [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`];
  return { ID: id, StableID: `n${id}CNTRL`, Name: `n${id}.t.example.`, User: 1, Key: `nodekey:${id.toString(16).padStart(64, "0")}`, Addresses: addrs, AllowedIPs: [...addrs], Online: true, ...extra };
}
const router = node(2, { AllowedIPs: ["100.64.0.2/32", "fd7a:115c:a1e0::2/128", "10.77.0.0/24"], PrimaryRoutes: ["10.77.0.0/24"] });
const exit = node(3, { AllowedIPs: ["100.64.0.3/32", "fd7a:115c:a1e0::3/128", "0.0.0.0/0", "::/0"] });
const exit2 = node(4, { AllowedIPs: ["100.64.0.4/32", "0.0.0.0/0", "::/0"], Name: "a-exit.t.example.", HomeDERP: 901 });

function badRequest(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LatticedError);
    expect((e as LatticedError).code).toBe("bad_request");
    return (e as Error).message;
  }
  throw new Error("did not throw");
}

describe("AdvertiseRoutes and exit node prefs", () => {
  it("non-canonical, malformed and half-exit-pair routes are refused naming the entry and the value; good ones come back canonical", () => {
    expect(badRequest(() => parsePrefsPatch({ AdvertiseRoutes: ["10.0.0.0/24", "10.0.0.1/24"] }))).toBe('AdvertiseRoutes[1]: "10.0.0.1/24" has non-address bits set; expected 10.0.0.0/24 (got "10.0.0.1/24")');
    expect(badRequest(() => parseUpRequest({ AdvertiseRoutes: ["10.0.0.0/33"] }))).toBe('AdvertiseRoutes[0]: "10.0.0.0/33" is not a CIDR prefix like "10.0.0.0/24" or "fd00::/64" (got "10.0.0.0/33")');
    expect(badRequest(() => parsePrefsPatch({ AdvertiseRoutes: ["nope"] }))).toContain('AdvertiseRoutes[0]: "nope" is not a CIDR prefix');
    expect(badRequest(() => parsePrefsPatch({ AdvertiseRoutes: ["10.0.0.0"] }))).toContain("AdvertiseRoutes[0]");
    expect(badRequest(() => parsePrefsPatch({ AdvertiseRoutes: [7] }))).toContain("AdvertiseRoutes[0]: must be a CIDR prefix string (got 7)");
    expect(badRequest(() => parsePrefsPatch({ AdvertiseRoutes: "10.0.0.0/24" }))).toContain("AdvertiseRoutes: must be a list");
    expect(badRequest(() => parsePrefsPatch({ AdvertiseRoutes: ["0.0.0.0/0"] }))).toContain("AdvertiseRoutes: 0.0.0.0/0 without ::/0");
    expect(badRequest(() => parseUpRequest({ AdvertiseRoutes: ["::/0"] }))).toContain("AdvertiseRoutes: ::/0 without 0.0.0.0/0");
    expect(badRequest(() => parsePrefsPatch({ AdvertiseRoutes: Array.from({ length: 257 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`) }))).toContain("at most 256");
    expect(parsePrefsPatch({ AdvertiseRoutes: ["fd00:0::/64", "10.1.0.0/16", "10.1.0.0/16", "::/0", "0.0.0.0/0"] }).AdvertiseRoutes).toEqual(["fd00::/64", "10.1.0.0/16", "::/0", "0.0.0.0/0"]);
    expect(badRequest(() => parsePrefsPatch({ ExitNodeIP: "100.64.0.300" }))).toContain("ExitNodeIP: must be a tailnet IP address");
    expect(badRequest(() => parsePrefsPatch({ ExitNodeID: "n1 x" }))).toContain("ExitNodeID: must be a StableNodeID");
    expect(badRequest(() => parsePrefsPatch({ NoSNAT: "yes" }))).toContain("NoSNAT: must be true or false");
    expect(badRequest(() => parseUpRequest({ ExitNodeAllowLANAccess: 1 }))).toContain("ExitNodeAllowLANAccess");
  });

  it("stored prefs round-trip; a stored value that no longer validates falls back to the default", () => {
    const p = loadPrefs({ ...defaultPrefs(), AdvertiseRoutes: ["10.0.0.0/8"], ExitNodeID: "n3CNTRL", ExitNodeIP: "100.64.0.3", ExitNodeAllowLANAccess: true, NoSNAT: true });
    expect(p).toMatchObject({ AdvertiseRoutes: ["10.0.0.0/8"], ExitNodeID: "n3CNTRL", ExitNodeIP: "100.64.0.3", ExitNodeAllowLANAccess: true, NoSNAT: true });
    expect(loadPrefs({ AdvertiseRoutes: ["10.0.0.1/8"] }).AdvertiseRoutes).toEqual([]);
  });

  it("ExitNodeIP resolves to the peer's StableID; unknown, non-exit and own addresses are refused; '' clears both; no exit node while advertising one", () => {
    const self = node(1);
    const peers = [router, exit];
    const next = { ExitNodeID: "", ExitNodeIP: "", AdvertiseRoutes: [] as string[] };
    applyExitChoice(next, { ExitNodeIP: "100.64.0.3" }, self, peers);
    expect(next).toMatchObject({ ExitNodeID: "n3CNTRL", ExitNodeIP: "100.64.0.3" });
    expect(badRequest(() => applyExitChoice({ ...next }, { ExitNodeIP: "100.64.0.9" }, self, peers))).toBe("ExitNodeIP: 100.64.0.9 is not a peer offering an exit node");
    expect(badRequest(() => applyExitChoice({ ...next }, { ExitNodeIP: "100.64.0.2" }, self, peers))).toBe("ExitNodeIP: 100.64.0.2 is not a peer offering an exit node");
    expect(badRequest(() => applyExitChoice({ ...next }, { ExitNodeIP: "100.64.0.1" }, self, peers))).toContain("own address");
    expect(badRequest(() => applyExitChoice({ ...next }, { ExitNodeID: "n2CNTRL" }, self, peers))).toContain("is not a peer offering an exit node");
    const byId = { ExitNodeID: "", ExitNodeIP: "", AdvertiseRoutes: [] as string[] };
    applyExitChoice(byId, { ExitNodeID: "n3CNTRL" }, self, peers);
    expect(byId).toMatchObject({ ExitNodeID: "n3CNTRL", ExitNodeIP: "100.64.0.3" });
    applyExitChoice(next, { ExitNodeIP: "" }, self, peers);
    expect(next).toMatchObject({ ExitNodeID: "", ExitNodeIP: "" });
    expect(badRequest(() => applyExitChoice({ ...next, AdvertiseRoutes: ["0.0.0.0/0", "::/0"] }, { ExitNodeIP: "100.64.0.3" }, self, peers))).toContain("while advertising this node as one");
    // Without a netmap nothing can be resolved.
    expect(badRequest(() => applyExitChoice({ ...next }, { ExitNodeIP: "100.64.0.3" }, null, []))).toContain("is not a peer offering an exit node");
    // Both ways of naming the exit node in one change: refused (they could disagree), nothing changed.
    const before = { ...next };
    expect(badRequest(() => applyExitChoice(next, { ExitNodeIP: "100.64.0.3", ExitNodeID: "n4CNTRL" }, self, [exit, exit2]))).toBe(
      'ExitNodeIP, ExitNodeID: set one of them, not both (got ExitNodeIP "100.64.0.3" and ExitNodeID "n4CNTRL")',
    );
    expect(next).toEqual(before);
  });
});

describe("route selection", () => {
  it("peers keep their addresses; subnet routes only with RouteAll; exit routes only for the selected exit node", () => {
    expect(peerAllowedIps(router, NO_ROUTES)).toEqual(["100.64.0.2/32", "fd7a:115c:a1e0::2/128"]);
    expect(peerAllowedIps(router, { ...NO_ROUTES, routeAll: true })).toEqual(["100.64.0.2/32", "fd7a:115c:a1e0::2/128", "10.77.0.0/24"]);
    expect(peerAllowedIps(exit, { ...NO_ROUTES, routeAll: true })).toEqual(["100.64.0.3/32", "fd7a:115c:a1e0::3/128"]);
    expect(peerAllowedIps(exit, { ...NO_ROUTES, exitNodeId: "n3CNTRL" })).toEqual(["100.64.0.3/32", "fd7a:115c:a1e0::3/128", "0.0.0.0/0", "::/0"]);
    expect(peerAllowedIps(exit2, { ...NO_ROUTES, exitNodeId: "n3CNTRL" })).toEqual(["100.64.0.4/32"]);
  });

  it("filter local nets: own addresses plus approved advertised routes — an unapproved route is not local, an approved exit makes everything local", () => {
    const selfRouter = node(2, { AllowedIPs: ["100.64.0.2/32", "10.77.0.0/24"], PrimaryRoutes: ["10.77.0.0/24"] });
    expect(filterLocalNets(selfRouter, ["10.77.0.0/24", "10.88.0.0/24"])).toEqual(["100.64.0.2/32", "fd7a:115c:a1e0::2/128", "10.77.0.0/24"]);
    expect(filterLocalNets(selfRouter, [])).toEqual(["100.64.0.2/32", "fd7a:115c:a1e0::2/128"]);
    const exitNets = filterLocalNets(exit, ["0.0.0.0/0", "::/0"]);
    expect(exitNets).toEqual([...exit.Addresses, "0.0.0.0-100.63.255.255", "100.128.0.0-255.255.255.255", "::-fd7a:115c:a1df:ffff:ffff:ffff:ffff:ffff", "fd7a:115c:a1e1::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]);
    expect(filterLocalNets(node(3), ["0.0.0.0/0", "::/0"])).toEqual(node(3).Addresses);
    // Enforced by the filter: with an allow-all rule, a packet to the unapproved 10.88.0.5 is "not-local".
    const rules = [{ SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] }];
    const f = Filter.fromRules(rules, filterLocalNets(selfRouter, ["10.77.0.0/24", "10.88.0.0/24"]));
    const icmp = (dst: number[]) => new Uint8Array([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 100, 64, 0, 9, ...dst, 8, 0, 0, 0, 0, 1, 0, 1]);
    expect(f.runIn(icmp([10, 77, 0, 5]), 0).accept).toBe(true);
    expect(f.runIn(icmp([10, 88, 0, 5]), 0)).toMatchObject({ accept: false, reason: "not-local" });
    // An exit node: the internet (and its own LANs) are local, other tailnet addresses are not (no hairpin).
    const fe = Filter.fromRules(rules, exitNets);
    expect(fe.errors).toEqual([]);
    for (const dst of [[198, 51, 100, 10], [10, 88, 0, 5], [100, 63, 255, 255], [100, 128, 0, 0]]) expect(fe.runIn(icmp(dst), 0).accept).toBe(true);
    expect(fe.runIn(icmp([100, 64, 0, 3]), 0).accept).toBe(true);
    expect(fe.runIn(icmp([100, 64, 0, 7]), 0)).toMatchObject({ accept: false, reason: "not-local" });
  });

  it("suggest-exit-node: online exit peers, same home DERP first, then a direct path, then name; none → null", () => {
    const offline = node(5, { AllowedIPs: ["100.64.0.5/32", "0.0.0.0/0", "::/0"], Online: false, Name: "0-offline.t.example." });
    expect(suggestExitNode([router, exit, exit2, offline], 0, () => false)?.ID).toBe("n4CNTRL");
    expect(suggestExitNode([exit, exit2], 0, (p) => p.ID === 3)?.ID).toBe("n3CNTRL");
    expect(suggestExitNode([exit, exit2], 901, (p) => p.ID === 3)).toEqual({ ID: "n4CNTRL", Name: "a-exit.t.example.", Location: null });
    expect(suggestExitNode([router, offline], 0, () => true)).toBeNull();
  });
});

describe("exit node health", () => {
  it("says why the selected exit node cannot carry traffic, and nothing while it can or none is selected", () => {
    expect(exitNodeHealth("", [])).toBeNull();
    expect(exitNodeHealth("n3CNTRL", [router, exit])).toBeNull();
    expect(exitNodeHealth("n3CNTRL", [router])).toBe(
      'exit node n3CNTRL is not available (it is no longer in the network map): internet traffic is dropped until it is back, or clear it with "lattice set --exit-node="',
    );
    expect(exitNodeHealth("n3CNTRL", [{ ...exit, AllowedIPs: exit.Addresses }])).toMatch(/^exit node n3\.t\.example is not available \(it no longer offers an exit node\)/);
    expect(exitNodeHealth("n3CNTRL", [{ ...exit, Online: false }])).toMatch(/^exit node n3\.t\.example is not available \(it is offline\)/);
  });
});

describe("router config and health", () => {
  const prefs = { ...defaultPrefs(), ControlURL: "http://control.example:8080" };
  it("routes: accepted subnet routes; with an exit node 0.0.0.0/0 + ::/0 and throw routes for control/DERP addresses (and LANs with LAN access); forwarding chains while advertising", () => {
    expect(routerConfig({ peers: [router, exit], prefs, bypass: ["10.66.0.1"], lanPrefixes: ["192.168.1.0/24"] })).toEqual({ routes: [], throws: [], forward: null });
    expect(routerConfig({ peers: [router, exit, { ...router, ID: 9, Expired: true }], prefs: { ...prefs, RouteAll: true }, bypass: [], lanPrefixes: [] }).routes).toEqual(["10.77.0.0/24"]);
    const withExit = routerConfig({ peers: [router, exit], prefs: { ...prefs, ExitNodeID: "n3CNTRL" }, bypass: ["10.66.0.1", "2001:db8::1", "100.64.0.7"], lanPrefixes: ["192.168.1.0/24"] });
    expect(withExit).toEqual({ routes: ["0.0.0.0/0", "::/0"], throws: ["10.66.0.1/32", "2001:db8::1/128"], forward: null });
    expect(routerConfig({ peers: [], prefs: { ...prefs, ExitNodeID: "n3CNTRL", ExitNodeAllowLANAccess: true }, bypass: [], lanPrefixes: ["192.168.1.0/24"] }).throws).toEqual(["192.168.1.0/24"]);
    expect(routerConfig({ peers: [], prefs: { ...prefs, AdvertiseRoutes: ["10.77.0.0/24"], NoSNAT: true }, bypass: [], lanPrefixes: [] }).forward).toEqual({ snat: false });
    // A standby router (same subnet advertised here) keeps its own subnet out of table 52.
    expect(routerConfig({ peers: [router], prefs: { ...prefs, RouteAll: true, AdvertiseRoutes: ["10.77.0.0/24"] }, bypass: [], lanPrefixes: [] }).routes).toEqual([]);
    // A subnet router using an exit node keeps its own subnets on its LAN (throw routes), both for the tailnet and for itself.
    expect(routerConfig({ peers: [exit], prefs: { ...prefs, ExitNodeID: "n3CNTRL", AdvertiseRoutes: ["192.168.50.0/24", "fd00:50::/64"] }, bypass: [], lanPrefixes: ["192.168.50.0/24"] })).toEqual({
      routes: ["0.0.0.0/0", "::/0"],
      throws: ["192.168.50.0/24", "fd00:50::/64"],
      forward: { snat: true },
    });
    expect(bypassHosts("http://control.example:8080", { Regions: { 900: { RegionID: 900, RegionCode: "x", RegionName: "x", Nodes: [{ Name: "a", RegionID: 900, HostName: "derp.example", IPv4: "203.0.113.5" }, { Name: "b", RegionID: 900, HostName: "derp2.example" }] } } } as never)).toEqual([
      "control.example",
      "203.0.113.5",
      "derp2.example",
    ]);
  });

  it("the Health line when forwarding is off on a node advertising routes (IPv4 for v4 routes, IPv6 for v6 routes)", () => {
    const files: Record<string, string> = { [FORWARDING_FILES[4]]: "0\n", [FORWARDING_FILES[6]]: "1\n" };
    const m = new RouteManager({ router: { set: async () => {} }, lanPrefixes: () => [], readSysctl: (p) => files[p] ?? null });
    expect(m.health({ AdvertiseRoutes: [] })).toEqual([]);
    expect(m.health({ AdvertiseRoutes: ["10.0.0.0/24"] })).toEqual([FORWARDING_OFF_HEALTH]);
    expect(m.health({ AdvertiseRoutes: ["fd00::/64"] })).toEqual([]);
    files[FORWARDING_FILES[4]] = "1\n";
    expect(m.health({ AdvertiseRoutes: ["0.0.0.0/0", "::/0"] })).toEqual([]);
    files[FORWARDING_FILES[6]] = "0\n";
    expect(m.health({ AdvertiseRoutes: ["fd00::/64"] })).toEqual([FORWARDING_OFF_HEALTH]);
  });

  it("apply resolves the control and DERP host names only with an exit node, reusing an answer for 60 s and the last one when a lookup fails", async () => {
    const sets: unknown[] = [];
    let fail = false;
    let lookups = 0;
    let now = 0;
    const m = new RouteManager({
      router: { set: async (c) => void sets.push(c) },
      lanPrefixes: () => [],
      now: () => now,
      lookup: async (h) => {
        lookups++;
        if (fail) throw new Error("ENOTFOUND");
        return h === "control.example" ? ["10.66.0.1"] : [];
      },
    });
    const nm = Netmap.fromFull({ Node: node(1), Peers: [exit] }, 0)!;
    await m.apply(nm, prefs);
    expect(sets[0]).toEqual({ routes: [], throws: [], forward: null });
    await m.apply(nm, { ...prefs, ExitNodeID: "n3CNTRL" });
    expect(lookups).toBe(1);
    now = 30_000;
    await m.apply(nm, { ...prefs, ExitNodeID: "n3CNTRL" });
    expect(lookups).toBe(1);
    fail = true;
    now = 61_000;
    await m.apply(nm, { ...prefs, ExitNodeID: "n3CNTRL" });
    expect(lookups).toBe(2);
    expect(sets[1]).toEqual({ routes: ["0.0.0.0/0", "::/0"], throws: ["10.66.0.1/32"], forward: null });
    expect(sets[2]).toEqual(sets[1]);
    expect(sets[3]).toEqual(sets[1]);
  });

  it("a router failure is a Health line until the next apply succeeds", async () => {
    let fail = true;
    const m = new RouteManager({
      router: {
        set: async () => {
          if (fail) throw new LatticedError("router_setup", "configuring routes failed: iptables -w -N lattice-forward: not found");
        },
      },
      lanPrefixes: () => [],
      readSysctl: () => "1",
    });
    const nm = Netmap.fromFull({ Node: node(1), Peers: [] }, 0)!;
    await expect(m.apply(nm, prefs)).rejects.toThrowError(/iptables/);
    expect(m.health({ AdvertiseRoutes: [] })).toEqual(["configuring routes failed: iptables -w -N lattice-forward: not found"]);
    fail = false;
    await m.apply(nm, prefs);
    expect(m.health({ AdvertiseRoutes: [] })).toEqual([]);
  });
});

describe("status", () => {
  it("ExitNode marks the selected peer, ExitNodeOption the peers offering one, PrimaryRoutes without exit routes, ExitNodeStatus only while selected", () => {
    const nm = Netmap.fromFull({ Node: node(1), Peers: [router, { ...exit, PrimaryRoutes: ["0.0.0.0/0"] }] }, 0)!;
    const input = { version: "t", backendState: "Running" as const, authURL: "", haveNodeKey: true, tun: false, health: [], netmap: nm, selfEndpoints: [], selfHomeDerp: 0, counters: new Map(), path: () => undefined, now: 0, wallNow: 0, includePeers: true };
    const s = buildStatus({ ...input, exitNodeId: "n3CNTRL" });
    const byId = (id: string) => Object.values(s.Peer!).find((p) => p.ID === id)!;
    expect(byId("n3CNTRL")).toMatchObject({ ExitNode: true, ExitNodeOption: true });
    expect(byId("n3CNTRL").PrimaryRoutes).toBeUndefined();
    expect(byId("n2CNTRL")).toMatchObject({ ExitNode: false, ExitNodeOption: false, PrimaryRoutes: ["10.77.0.0/24"] });
    expect(s.ExitNodeStatus).toEqual({ ID: "n3CNTRL", Online: true, TailscaleIPs: ["100.64.0.3/32", "fd7a:115c:a1e0::3/128"] });
    expect(buildStatus(input).ExitNodeStatus).toBeUndefined();
  });
});
