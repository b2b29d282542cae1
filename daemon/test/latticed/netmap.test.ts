import { describe, expect, it } from "vitest";
import type { MapResponse, Node } from "@lattice/types";
import { Netmap } from "../../src/latticed/netmap.js";

const key = (n: number) => `nodekey:${n.toString(16).padStart(64, "0")}` as Node["Key"];
function node(id: number, extra: Partial<Node> = {}): Node {
  return { ID: id, StableID: `n${id}`, Name: `h${id}.t.example.`, User: 1, Key: key(id), Addresses: [`100.64.0.${id}/32`], AllowedIPs: [`100.64.0.${id}/32`], Endpoints: [`10.0.0.${id}:41641`], ...extra };
}
const full: MapResponse = { Node: node(1), Peers: [node(2), node(3)], PacketFilter: [], DERPMap: { Regions: {} }, Domain: "t.example", UserProfiles: [{ ID: 1, LoginName: "a@", DisplayName: "A" }] };

describe("Netmap", () => {
  it("a full map sets self, peers, filter, DERP map, domain, users", () => {
    const nm = Netmap.fromFull(full, 0)!;
    expect(nm.self.ID).toBe(1);
    expect([...nm.peers.keys()]).toEqual([2, 3]);
    expect(nm.domain).toBe("t.example");
    expect(nm.userProfiles.get(1)?.LoginName).toBe("a@");
  });

  it("a full map without Node is not a netmap", () => {
    expect(Netmap.fromFull({ Peers: [] }, 0)).toBeNull();
  });

  it("PeersChanged adds and replaces, PeersRemoved removes", () => {
    const nm = Netmap.fromFull(full, 0)!;
    const ch = nm.apply({ PeersChanged: [node(4), node(2, { Endpoints: ["10.9.9.9:1"] })], PeersRemoved: [3] }, 0);
    expect(ch.peers).toBe(true);
    expect([...nm.peers.keys()].sort()).toEqual([2, 4]);
    expect(nm.peers.get(2)!.Endpoints).toEqual(["10.9.9.9:1"]);
  });

  it("PeersChangedPatch patches endpoints, DERP region, disco key, key expiry; unknown peers are ignored", () => {
    const nm = Netmap.fromFull(full, 0)!;
    const disco = `discokey:${"ab".repeat(32)}` as const;
    nm.apply({ PeersChangedPatch: [{ NodeID: 2, Endpoints: ["1.2.3.4:5"], DERPRegion: 901, DiscoKey: disco, KeyExpiry: "2030-01-01T00:00:00Z" }, { NodeID: 99, Endpoints: ["x"] }] }, 0);
    const p = nm.peers.get(2)!;
    expect(p.Endpoints).toEqual(["1.2.3.4:5"]);
    expect(p.HomeDERP).toBe(901);
    expect(p.DERP).toBe("127.3.3.40:901");
    expect(p.DiscoKey).toBe(disco);
    expect(p.KeyExpiry).toBe("2030-01-01T00:00:00Z");
    expect(p.AllowedIPs).toEqual(["100.64.0.2/32"]);
    expect(nm.peers.has(99)).toBe(false);
  });

  it("OnlineChange and PeerSeenChange update Online and LastSeen", () => {
    const nm = Netmap.fromFull(full, 0)!;
    const t = Date.parse("2026-01-02T03:04:05Z");
    const ch = nm.apply({ OnlineChange: { "2": true, "3": false }, PeerSeenChange: { "3": true } }, t);
    expect(nm.peers.get(2)!.Online).toBe(true);
    expect(nm.peers.get(3)!.Online).toBe(false);
    expect(nm.peers.get(3)!.LastSeen).toBe("2026-01-02T03:04:05.000Z");
    expect(ch.peers).toBe(false);
  });

  it("a keep-alive changes nothing; a delta PacketFilter replaces the filter", () => {
    const nm = Netmap.fromFull(full, 0)!;
    expect(nm.apply({ KeepAlive: true }, 0)).toEqual({ self: false, peers: false, filter: false, derpMap: false, ssh: false, dns: false });
    const rules = [{ SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 22, Last: 22 } }] }];
    expect(nm.apply({ PacketFilter: rules }, 0).filter).toBe(true);
    expect(nm.packetFilter).toEqual(rules);
  });

  it("a delta carrying an SSHPolicy reports ssh (so live SSH sessions are re-checked); one without leaves the policy", () => {
    const nm = Netmap.fromFull(full, 0)!;
    const pol = { rules: [{ principals: [{ any: true }], sshUsers: { root: "root" }, action: { accept: true } }] };
    expect(nm.apply({ SSHPolicy: pol } as never, 0).ssh).toBe(true);
    expect(nm.sshPolicy).toEqual(pol);
    expect(nm.apply({ KeepAlive: true }, 0).ssh).toBe(false);
    expect(nm.sshPolicy).toEqual(pol);
  });

  it("self key expiry: the Expired flag or a KeyExpiry in the past", () => {
    const nm = Netmap.fromFull({ ...full, Node: node(1, { KeyExpiry: "2026-01-01T00:00:00Z" }) }, 0)!;
    expect(nm.selfExpired(Date.parse("2025-12-31T23:59:59Z"))).toBe(false);
    expect(nm.selfExpired(Date.parse("2026-01-01T00:00:00Z"))).toBe(true);
    nm.apply({ Node: node(1, { Expired: true }) }, 0);
    expect(nm.selfExpired(0)).toBe(true);
  });

  it("round-trips through its JSON form (the saved netmap)", () => {
    const nm = Netmap.fromFull(full, 0)!;
    const back = Netmap.fromJson(JSON.parse(JSON.stringify(nm.toJson())))!;
    expect(back.toJson()).toEqual(nm.toJson());
    expect(Netmap.fromJson({ nope: 1 })).toBeNull();
  });
});
