/**
 * A small in-memory NodeBackend for node-API tests: auth keys, nodes, a policy given as
 * a function, and change sets published exactly as the contract in backend.ts says.
 * Not a stub: it keeps real state, so streams observe real joins and policy changes.
 */
import type { FilterRule, MachineKeyString, Node, NodeID, RegisterRequest, RegisterResponse, UserProfile } from "@lattice/types";
import { type VersionedChange, type NetmapState, type NodeBackend, type NodePolicyView, type NodeUpdate, NodeBackendError } from "../../src/nodeapi/backend.js";

/** Policy: for a viewer and all nodes, which peers it sees and its packet filter. */
export type TestPolicy = (viewer: Node, all: readonly Node[]) => { peers: NodeID[]; packetFilter: FilterRule[] };

/** Allow-all: everyone sees everyone, filter accepts everything. */
export const allowAll: TestPolicy = (viewer, all) => ({
  peers: all.filter((n) => n.ID !== viewer.ID).map((n) => n.ID),
  packetFilter: [{ SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] }],
});

export class MemoryBackend implements NodeBackend {
  private nodes = new Map<NodeID, Node>();
  private byMachine = new Map<string, NodeID>();
  private listeners = new Set<(c: VersionedChange) => void>();
  private version = 1;
  private nextId = 1;
  private policies = new Map<NodeID, NodePolicyView>();
  private state!: NetmapState;
  readonly authKeys = new Map<string, { preapproved: boolean; used: boolean; reusable: boolean }>();
  readonly profiles = new Map<number, UserProfile>([[1, { ID: 1, LoginName: "alice@example.com", DisplayName: "Alice" }]]);
  onlineCalls: Array<[NodeID, boolean]> = [];

  constructor(private policy: TestPolicy = allowAll) {
    this.rebuild();
  }

  private rebuild(): void {
    const all = [...this.nodes.values()];
    this.policies = new Map();
    for (const n of all) {
      const p = this.policy(n, all);
      const peers = new Map<NodeID, readonly string[]>();
      for (const id of p.peers) peers.set(id, this.nodes.get(id)!.AllowedIPs);
      this.policies.set(n.ID, { packetFilter: p.packetFilter, sshPolicy: null, peers });
    }
    const policies = this.policies;
    this.state = {
      version: this.version,
      domain: "test.lattice",
      derpMap: { Regions: { "900": { RegionID: 900, RegionCode: "t", RegionName: "test", Nodes: [] } } },
      dnsConfig: { Proxied: true, Domains: ["test.lattice"] },
      nodes: new Map(this.nodes),
      userProfiles: this.profiles,
      policyFor: (id) => policies.get(id),
    };
  }

  private publish(c: Omit<VersionedChange, "version">, policyToo = true): void {
    this.version++;
    this.rebuild();
    const change: VersionedChange = { ...c, version: this.version, ...(policyToo ? { policyChanged: c.policyChanged ?? false } : {}) };
    for (const l of this.listeners) l(change);
  }

  setPolicy(p: TestPolicy): void {
    this.policy = p;
    this.publish({ policyChanged: true });
  }

  deleteNode(id: NodeID): void {
    const n = this.nodes.get(id);
    if (!n) return;
    this.nodes.delete(id);
    this.byMachine.delete(n.Machine!);
    this.publish({ nodesRemoved: [id], disconnect: [id] });
  }

  async register(machineKey: MachineKeyString, req: RegisterRequest): Promise<RegisterResponse> {
    const key = req.Auth?.AuthKey;
    const ak = key ? this.authKeys.get(key) : undefined;
    if (!ak) throw new NodeBackendError(401, "invalid_auth_key", "invalid auth key");
    if (ak.used && !ak.reusable) throw new NodeBackendError(401, "auth_key_used", "auth key already used");
    ak.used = true;
    let id = this.byMachine.get(machineKey);
    const isNew = id === undefined;
    id ??= this.nextId++;
    const host = req.Hostinfo?.Hostname ?? `node${id}`;
    const addr = [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`];
    this.nodes.set(id, {
      ID: id,
      StableID: `n${id}`,
      Name: `${host}.test.lattice.`,
      User: 1,
      Key: req.NodeKey,
      Machine: machineKey,
      Addresses: addr,
      AllowedIPs: addr,
      MachineAuthorized: ak.preapproved,
      Hostinfo: req.Hostinfo ?? undefined,
    });
    this.byMachine.set(machineKey, id);
    this.publish(isNew ? { nodesAdded: [id], policyChanged: true } : { nodesChanged: [id] });
    return {
      User: { ID: 1, DisplayName: "Alice" },
      Login: { ID: 1, Provider: "local", LoginName: "alice@example.com", DisplayName: "Alice" },
      NodeKeyExpired: false,
      MachineAuthorized: ak.preapproved,
      AuthURL: "",
      Error: "",
    };
  }

  async authorizeMap(machineKey: MachineKeyString, nodeKey: string): Promise<{ nodeId: NodeID }> {
    const id = this.byMachine.get(machineKey);
    const n = id === undefined ? undefined : this.nodes.get(id);
    if (!n || n.Key !== nodeKey) throw new NodeBackendError(404, "node_not_found", "node not found");
    if (!n.MachineAuthorized) throw new NodeBackendError(403, "machine_not_authorized", "machine not authorized");
    return { nodeId: n.ID };
  }

  async updateNodeFromMapRequest(nodeId: NodeID, u: NodeUpdate): Promise<void> {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    const next: Node = { ...n };
    if (u.endpoints) next.Endpoints = u.endpoints;
    if (u.discoKey) next.DiscoKey = u.discoKey;
    if (u.homeDERP !== undefined) next.HomeDERP = u.homeDERP;
    if (u.hostinfo) next.Hostinfo = u.hostinfo;
    this.nodes.set(nodeId, next);
    this.publish({ endpointsChanged: [nodeId] }, false);
  }

  async setOnline(nodeId: NodeID, online: boolean): Promise<void> {
    this.onlineCalls.push([nodeId, online]);
    const n = this.nodes.get(nodeId);
    if (!n) return;
    this.nodes.set(nodeId, { ...n, Online: online });
    this.publish({ online: new Map([[nodeId, online]]) }, false);
  }

  netmapState(): NetmapState {
    return this.state;
  }

  subscribe(listener: (change: VersionedChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
