import { describe, expect, it } from "vitest";
import type { MapResponse, Node } from "@lattice/types";
import { Netmap } from "../../src/latticed/netmap.js";
import { buildStatus, ZERO_TIME, type StatusInput } from "../../src/latticed/status.js";

const hex = (n: number) => n.toString(16).padStart(64, "0");
function node(id: number, extra: Partial<Node> = {}): Node {
  return {
    ID: id, StableID: `n${id}CNTRL`, Name: `h${id}.t.example.`, User: id === 3 ? 2 : 1, Key: `nodekey:${hex(id)}`,
    Addresses: [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`], AllowedIPs: [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`],
    Endpoints: [`10.0.0.${id}:41641`], Hostinfo: { Hostname: `h${id}`, OS: "linux" }, Created: "2026-01-01T00:00:00.000Z", ...extra,
  };
}
const full: MapResponse = {
  Node: node(1),
  Peers: [node(2, { Online: true, HomeDERP: 900 }), node(3, { Online: false, AllowedIPs: ["100.64.0.3/32", "0.0.0.0/0", "::/0"], Tags: ["tag:srv"] })],
  DERPMap: { Regions: { "900": { RegionID: 900, RegionCode: "home", RegionName: "Home", Nodes: [] } } },
  Domain: "t.example",
  UserProfiles: [{ ID: 1, LoginName: "alice@", DisplayName: "Alice" }, { ID: 2, LoginName: "bob@", DisplayName: "Bob" }],
};

function input(over: Partial<StatusInput> = {}): StatusInput {
  const now = 1_000_000;
  return {
    version: "0.1.0", backendState: "Running", authURL: "", haveNodeKey: true, tun: true, health: [],
    netmap: Netmap.fromFull(full, 0), selfEndpoints: ["10.0.0.1:41641"], selfHomeDerp: 900,
    counters: new Map([[hex(2), { rxBytes: 100, txBytes: 200, lastHandshake: Date.parse("2026-02-02T00:00:00Z") }]]),
    path: (k) => (k === hex(2) ? { curAddr: "10.0.0.2:41641", derpRegionId: 0, lastRecv: now - 10_000, lastSend: now - 50_000, addrs: ["10.0.0.2:41641"] } : k === hex(3) ? { curAddr: "", derpRegionId: 900, lastRecv: now - 60_000, lastSend: 0, addrs: [] } : undefined),
    now, wallNow: Date.parse("2026-02-02T00:01:00Z"), includePeers: true,
    ...over,
  };
}

describe("buildStatus", () => {
  it("fills Self, TailscaleIPs, tailnet and users as ipnstate.Status does", () => {
    const s = buildStatus(input());
    expect(s.BackendState).toBe("Running");
    expect(s.TailscaleIPs).toEqual(["100.64.0.1", "fd7a:115c:a1e0::1"]);
    expect(s.Self!.HostName).toBe("h1");
    expect(s.Self!.Addrs).toEqual(["10.0.0.1:41641"]);
    expect(s.Self!.Relay).toBe("home");
    expect(s.MagicDNSSuffix).toBe("t.example");
    expect(s.CurrentTailnet).toEqual({ Name: "t.example", MagicDNSSuffix: "t.example", MagicDNSEnabled: false });
    expect(Object.keys(s.User).sort()).toEqual(["1", "2"]);
    expect(s.ClientVersion).toBeNull();
  });

  it("a direct peer: CurAddr, counters, handshake, Active within 45 s", () => {
    const p = buildStatus(input()).Peer![`nodekey:${hex(2)}`]!;
    expect(p).toMatchObject({ HostName: "h2", DNSName: "h2.t.example.", CurAddr: "10.0.0.2:41641", Relay: "home", RxBytes: 100, TxBytes: 200, Online: true, Active: true, InEngine: true, InMagicSock: true, Expired: false, ExitNodeOption: false });
    expect(p.LastHandshake).toBe("2026-02-02T00:00:00.000Z");
    expect(p.LastWrite).toBe("2026-02-02T00:00:10.000Z");
    expect(p.TailscaleIPs).toEqual(["100.64.0.2", "fd7a:115c:a1e0::2"]);
  });

  it("a relayed, idle, offline peer: empty CurAddr, Relay code, not Active, zero times", () => {
    const p = buildStatus(input()).Peer![`nodekey:${hex(3)}`]!;
    expect(p).toMatchObject({ CurAddr: "", Relay: "home", Active: false, Online: false, RxBytes: 0, LastHandshake: ZERO_TIME, LastWrite: ZERO_TIME, ExitNodeOption: true, Tags: ["tag:srv"], InEngine: false });
  });

  it("?peers=false omits Peer; no netmap gives Self null and no IPs", () => {
    expect(buildStatus(input({ includePeers: false })).Peer).toBeUndefined();
    const s = buildStatus(input({ netmap: null, backendState: "NeedsLogin", authURL: "http://c/a/x", haveNodeKey: false }));
    expect(s).toMatchObject({ Self: null, TailscaleIPs: [], AuthURL: "http://c/a/x", CurrentTailnet: null, Peer: {} });
  });

  it("while stopped, peers are listed without engine counters", () => {
    const p = buildStatus(input({ backendState: "Stopped" })).Peer![`nodekey:${hex(2)}`]!;
    expect(p).toMatchObject({ RxBytes: 0, Active: false, InEngine: false, CurAddr: "" });
  });
});
