import { describe, expect, it } from "vitest";
import type { FilterRule, Node, NodeID, UserProfile } from "@lattice/types";
import type { NetmapState, NodePolicyView, VersionedChange } from "../../src/mapper/types.js";
import { fullMapResponse } from "../../src/mapper/full.js";
import { MapSession } from "../../src/mapper/session.js";
import { NodeJsonCache, encodeMapResponse } from "../../src/mapper/encode.js";

const hex = (i: number, pfx: string) => `${pfx}:${i.toString(16).padStart(64, "0")}`;

function mkNode(id: number, user = 1, extra: Partial<Node> = {}): Node {
  const a = [`100.64.${id >> 8}.${id & 255}/32`, `fd7a:115c:a1e0::${id.toString(16)}/128`];
  return {
    ID: id,
    StableID: `s${id}`,
    Name: `n${id}.ts.test.`,
    User: user,
    Key: hex(id, "nodekey") as Node["Key"],
    Addresses: a,
    AllowedIPs: a,
    MachineAuthorized: true,
    ...extra,
  };
}

const allowAllFilter: FilterRule[] = [{ SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] }];

/** Builds a snapshot; `visible(viewer)` lists peer ids (AllowedIPs = the peer's own array). */
function mkState(version: number, nodes: Node[], visible: (v: NodeID) => NodeID[], filter: (v: NodeID) => FilterRule[] = () => allowAllFilter, profiles?: Map<number, UserProfile>): NetmapState {
  const byId = new Map(nodes.map((n) => [n.ID, n]));
  const cache = new Map<NodeID, NodePolicyView>();
  return {
    version,
    domain: "ts.test",
    derpMap: { Regions: {} },
    dnsConfig: { Proxied: true },
    nodes: byId,
    userProfiles: profiles ?? new Map([1, 2, 3].map((i) => [i, { ID: i, LoginName: `u${i}@x`, DisplayName: `U${i}` }])),
    policyFor(id) {
      if (!byId.has(id)) return undefined;
      let p = cache.get(id);
      if (!p) {
        const peers = new Map<NodeID, readonly string[]>();
        for (const pid of visible(id)) {
          const peer = byId.get(pid);
          if (peer) peers.set(pid, peer.AllowedIPs);
        }
        p = { packetFilter: filter(id), sshPolicy: null, peers };
        cache.set(id, p);
      }
      return p;
    },
  };
}

describe("fullMapResponse", () => {
  it("lists only the peers the policy shows, sorted, sharing peer objects, with their users' profiles", () => {
    const nodes = [mkNode(1, 1), mkNode(2, 2), mkNode(3, 3), mkNode(4, 1, { MachineAuthorized: false })];
    const st = mkState(1, nodes, (v) => (v === 1 ? [3, 2, 4] : [1]));
    const r = fullMapResponse(st, 1)!;
    expect(r.Node).toBe(nodes[0]);
    expect(r.Peers!.map((p) => p.ID)).toEqual([2, 3]); // 4 awaits approval: never a peer
    expect(r.Peers![0]).toBe(nodes[1]);
    expect(r.UserProfiles!.map((u) => u.ID)).toEqual([1, 2, 3]);
    expect(r.PacketFilter).toBe(allowAllFilter);
    expect(r.Domain).toBe("ts.test");
    expect(r.SSHPolicy).toBeUndefined();
    const r2 = fullMapResponse(st, 2)!;
    expect(r2.Peers!.map((p) => p.ID)).toEqual([1]);
    expect(r2.UserProfiles!.map((u) => u.ID)).toEqual([1, 2]);
    expect(fullMapResponse(st, 99)).toBeNull();
  });

  it("copies a peer only when the viewer gets different AllowedIPs", () => {
    const nodes = [mkNode(1), mkNode(2)];
    const st = mkState(1, nodes, () => []);
    const pol: NodePolicyView = { packetFilter: [], sshPolicy: { rules: [] }, peers: new Map([[2, ["100.64.0.2/32", "10.0.0.0/8"]]]), capMap: { "cap:x": [] } };
    const r = fullMapResponse({ ...st, policyFor: () => pol }, 1)!;
    expect(r.Peers![0]).not.toBe(nodes[1]);
    expect(r.Peers![0].AllowedIPs).toEqual(["100.64.0.2/32", "10.0.0.0/8"]);
    expect(nodes[1].AllowedIPs).toHaveLength(2);
    expect(r.Node!.CapMap).toEqual({ "cap:x": [] });
    expect(r.SSHPolicy).toEqual({ rules: [] });
  });

  it("omits peers when asked", () => {
    const st = mkState(1, [mkNode(1), mkNode(2)], () => [2]);
    const r = fullMapResponse(st, 1, { omitPeers: true })!;
    expect(r.Peers).toBeUndefined();
  });
});

describe("encodeMapResponse", () => {
  it("produces the same JSON value as JSON.stringify, reusing cached peers", () => {
    const nodes = [mkNode(1), mkNode(2), mkNode(3)];
    const st = mkState(1, nodes, (v) => [1, 2, 3].filter((i) => i !== v));
    const cache = new NodeJsonCache();
    for (const id of [1, 2, 3]) {
      const r = fullMapResponse(st, id)!;
      expect(JSON.parse(encodeMapResponse(r, cache))).toEqual(JSON.parse(JSON.stringify(r)));
    }
    const delta = { PeersChanged: [nodes[0]], PeersRemoved: [5] };
    expect(JSON.parse(encodeMapResponse(delta, cache))).toEqual(delta);
    expect(JSON.parse(encodeMapResponse({ PeersChanged: [nodes[1]] }, cache))).toEqual({ PeersChanged: [nodes[1]] });
    expect(encodeMapResponse({ KeepAlive: true }, cache)).toBe('{"KeepAlive":true}');
  });

  it("encodes packet filters like JSON.stringify, sharing SrcIPs lists between filters", () => {
    const cache = new NodeJsonCache();
    const src = ["100.64.0.1", "100.64.0.2-100.64.0.9", "fd7a:115c:a1e0::1"];
    const a = { PacketFilter: [{ SrcIPs: src, DstPorts: [{ IP: "100.64.0.5", Ports: { First: 22, Last: 22 } }], IPProto: [6] }, { SrcIPs: ["*"], CapGrant: [{ Dsts: ["100.64.0.5/32"], CapMap: { "x.example/cap": null } }] }] };
    const b = { PacketFilter: [{ SrcIPs: src, DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] }], Domain: "t.example" };
    for (const r of [a, b, a, { PacketFilter: [] }]) {
      const json = encodeMapResponse(r, cache);
      expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(r)));
    }
    const principals = [{ nodeIP: "100.64.0.1" }, { nodeIP: "fd7a:115c:a1e0::1" }];
    const ssh = { SSHPolicy: { rules: [{ principals, sshUsers: { root: "", "*": "=" }, action: { accept: true } }, { principals, sshUsers: { alice: "alice" }, action: { holdAndDelegate: "https://x/a" }, acceptEnv: ["LANG"] }] } };
    for (const r of [ssh, ssh, { SSHPolicy: { rules: [] } }, { ...a, ...ssh, Peers: [] }]) expect(JSON.parse(encodeMapResponse(r, cache))).toEqual(JSON.parse(JSON.stringify(r)));
    // The shared SrcIPs list is cached, so a mutated copy in a new array object is encoded afresh.
    expect(JSON.parse(encodeMapResponse({ PacketFilter: [{ SrcIPs: [...src, "100.64.1.1"] }] }, cache)).PacketFilter[0].SrcIPs).toHaveLength(4);
  });
});

describe("MapSession deltas", () => {
  const everyone = (ids: number[]) => (v: NodeID) => ids.filter((i) => i !== v);

  it("turns joins, endpoint changes, online flips and removals into the matching delta fields", () => {
    let nodes = [mkNode(1), mkNode(2)];
    const s = new MapSession(1);
    s.full(mkState(1, nodes, everyone([1, 2])));

    nodes = [...nodes, mkNode(3, 2)];
    let st = mkState(2, nodes, everyone([1, 2, 3]));
    let d = s.delta({ version: 2, nodesAdded: [3] }, st);
    expect(d.response!.PeersChanged!.map((p) => p.ID)).toEqual([3]);
    expect(d.response!.UserProfiles!.map((u) => u.ID)).toEqual([2]); // new user only

    nodes = nodes.map((n) => (n.ID === 2 ? { ...n, Endpoints: ["192.0.2.2:1"], HomeDERP: 901 } : n));
    st = mkState(3, nodes, everyone([1, 2, 3]));
    d = s.delta({ version: 3, endpointsChanged: [2] }, st);
    expect(d.response).toEqual({ PeersChangedPatch: [{ NodeID: 2, Endpoints: ["192.0.2.2:1"], DERPRegion: 901 }] });

    st = mkState(4, nodes, everyone([1, 2, 3]));
    d = s.delta({ version: 4, online: new Map([[3, true], [1, true]]) }, st);
    expect(d.response).toEqual({ OnlineChange: { "3": true } });

    nodes = nodes.filter((n) => n.ID !== 3);
    st = mkState(5, nodes, everyone([1, 2]));
    d = s.delta({ version: 5, nodesRemoved: [3] }, st);
    expect(d.response).toEqual({ PeersRemoved: [3] });

    // Stale change sets are ignored; irrelevant ones give nothing.
    expect(s.delta({ version: 5, nodesRemoved: [2] }, st).response).toBeNull();
    expect(s.delta({ version: 6, endpointsChanged: [77] }, st).response).toBeNull();
  });

  it("a node the policy hides never shows up in deltas", () => {
    const nodes = [mkNode(1), mkNode(2), mkNode(3)];
    const vis = (v: NodeID) => (v === 1 ? [2] : v === 2 ? [1] : []);
    const s = new MapSession(1);
    s.full(mkState(1, nodes, vis));
    const st = mkState(2, nodes, vis);
    expect(s.delta({ version: 2, nodesAdded: [3], endpointsChanged: [3], online: new Map([[3, true]]) }, st).response).toBeNull();
  });

  it("on a policy change sends the new filter and peer set diff only where they changed", () => {
    const nodes = [mkNode(1), mkNode(2), mkNode(3)];
    const a = new MapSession(1);
    const b = new MapSession(2);
    const st1 = mkState(1, nodes, everyone([1, 2, 3]));
    a.full(st1);
    b.full(st1);
    const web: FilterRule[] = [{ SrcIPs: ["100.64.0.0/10"], DstPorts: [{ IP: "*", Ports: { First: 443, Last: 443 } }] }];
    // Node 1 loses sight of 3 and gets a new filter; node 2 keeps an equal (but new) filter object.
    const st2 = mkState(2, nodes, (v) => (v === 1 ? [2] : everyone([1, 2, 3])(v)), (v) => (v === 1 ? web : structuredClone(allowAllFilter)));
    const change: VersionedChange = { version: 2, policyChanged: true };
    const da = a.delta(change, st2);
    expect(da.response).toEqual({ PeersRemoved: [3], PacketFilter: web });
    expect(b.delta(change, st2).response).toBeNull();
    // Back again: 3 reappears in full.
    const st3 = mkState(3, nodes, everyone([1, 2, 3]));
    const da3 = a.delta({ version: 3, policyChanged: true }, st3);
    expect(da3.response!.PeersChanged!.map((p) => p.ID)).toEqual([3]);
    expect(da3.response!.PacketFilter).toEqual(allowAllFilter);
  });

  it("resends changed peers in full and its own node when it changed; closes on disconnect", () => {
    let nodes = [mkNode(1), mkNode(2)];
    const s = new MapSession(1);
    s.full(mkState(1, nodes, everyone([1, 2])));
    nodes = [mkNode(1, 1, { Name: "renamed.ts.test." }), mkNode(2, 1, { Key: hex(999, "nodekey") as Node["Key"] })];
    const st = mkState(2, nodes, everyone([1, 2]));
    const d = s.delta({ version: 2, nodesChanged: [1, 2] }, st);
    expect(d.response!.Node!.Name).toBe("renamed.ts.test.");
    expect(d.response!.PeersChanged![0].Key).toBe(hex(999, "nodekey"));
    expect(s.delta({ version: 3, disconnect: [1] }, st)).toEqual({ response: null, close: true });
  });

  it("scales: full netmaps and a join for 10,000 nodes (figures printed, not asserted)", () => {
    const N = 10_000;
    const nodes: Node[] = [];
    for (let i = 1; i <= N; i++) nodes.push(mkNode(i, 1 + (i % 3)));
    // Realistic-ish: each node sees its group of 100 plus 20 shared servers.
    const group = (v: NodeID) => {
      const base = Math.floor((v - 1) / 100) * 100;
      const out: number[] = [];
      for (let i = base + 1; i <= base + 100; i++) if (i !== v) out.push(i);
      for (let i = 1; i <= 20; i++) if (i !== v && (i > base + 100 || i <= base)) out.push(i);
      return out;
    };
    const st = mkState(1, nodes, group);
    for (let i = 1; i <= N; i++) st.policyFor(i); // the backend's compile, not the mapper's work
    const sessions: MapSession[] = [];
    let t = performance.now();
    for (let i = 1; i <= N; i++) fullMapResponse(st, i);
    const pureMs = performance.now() - t;
    const cache = new NodeJsonCache();
    t = performance.now();
    let bytes = 0;
    for (let i = 1; i <= N; i++) bytes += encodeMapResponse(fullMapResponse(st, i)!, cache).length;
    const jsonMs = performance.now() - t;
    t = performance.now();
    let peers = 0;
    for (let i = 1; i <= N; i++) {
      const s = new MapSession(i);
      peers += s.full(st)!.Peers!.length;
      sessions.push(s);
    }
    const fullMs = performance.now() - t;
    const joined = [...nodes, mkNode(N + 1)];
    const st2 = mkState(2, joined, (v) => (v === N + 1 ? [1, 2] : v <= 2 ? [...group(v), N + 1] : group(v)));
    for (let i = 1; i <= N + 1; i++) st2.policyFor(i);
    t = performance.now();
    let reached = 0;
    for (const s of sessions) if (s.delta({ version: 2, nodesAdded: [N + 1] }, st2).response) reached++;
    const joinMs = performance.now() - t;
    console.log(`mapper: ${N} full netmaps (${peers} peer entries): ${pureMs.toFixed(0)} ms pure, ${jsonMs.toFixed(0)} ms incl. JSON (${(bytes / 1e6).toFixed(0)} MB), ${fullMs.toFixed(0)} ms with session state; join delta to all sessions in ${joinMs.toFixed(1)} ms`);
    expect(reached).toBe(2);
    expect(peers).toBeGreaterThan(N * 100);
  });
});
