/**
 * The node's network map, built from the control server's map stream: the first
 * MapResponse of a stream is full (Node, Peers, DERPMap, PacketFilter, ...), later ones
 * are deltas (Tailscale's controlclient mapSession semantics, as lattice-control's
 * mapper sends them: coordination/src/mapper/session.ts):
 *
 * - `Peers` replaces the peer list; `PeersChanged` adds/replaces peers in full;
 *   `PeersRemoved` removes by NodeID; `PeersChangedPatch` patches Endpoints, DERPRegion
 *   (→ HomeDERP and the legacy DERP string), DiscoKey, Key, KeyExpiry, Online, LastSeen,
 *   Cap, CapMap of a known peer (a patch for an unknown peer is ignored);
 *   `OnlineChange` / `PeerSeenChange` set Online / LastSeen (now) by NodeID.
 * - `Node`, `DERPMap`, `PacketFilter`, `SSHPolicy`, `DNSConfig`, `Domain` replace the
 *   previous value when present; `UserProfiles` are merged by ID.
 * - A message with only `KeepAlive` changes nothing.
 *
 * Pure: no I/O; the caller passes the wall clock for PeerSeenChange.
 */
import type { DERPMap, DNSConfig, FilterRule, MapResponse, Node, NodeID, SSHPolicy, UserProfile } from "@lattice/types";

/** What an applied MapResponse changed (so the engine reconfigures only what it must). */
export interface NetmapChange {
  /** Self node changed (addresses, key expiry, ...). */
  self: boolean;
  /** The peer set or a peer's key/addresses/endpoints/disco key changed. */
  peers: boolean;
  /** The packet filter changed. */
  filter: boolean;
  /** The DERP map changed. */
  derpMap: boolean;
  /** The message carried an SSHPolicy. */
  ssh: boolean;
  /** DNSConfig or the tailnet Domain was sent (MagicDNS zone rebuilt). */
  dns: boolean;
}

/** The serialisable form (state file netmap.json). */
export interface NetmapJson {
  self: Node;
  peers: Node[];
  derpMap: DERPMap | null;
  packetFilter: FilterRule[];
  sshPolicy: SSHPolicy | null;
  dnsConfig: DNSConfig | null;
  domain: string;
  userProfiles: UserProfile[];
}

/** The current network map. */
export class Netmap {
  self: Node;
  readonly peers = new Map<NodeID, Node>();
  derpMap: DERPMap | null = null;
  packetFilter: FilterRule[] = [];
  sshPolicy: SSHPolicy | null = null;
  dnsConfig: DNSConfig | null = null;
  domain = "";
  readonly userProfiles = new Map<number, UserProfile>();

  private constructor(self: Node) {
    this.self = self;
  }

  /** A netmap from the first (full) MapResponse of a stream; null when it has no Node. */
  static fromFull(resp: MapResponse, wallNow: number): Netmap | null {
    if (!resp.Node) return null;
    const nm = new Netmap(resp.Node);
    nm.apply(resp, wallNow);
    return nm;
  }

  /** A netmap restored from netmap.json; null when the shape is wrong. */
  static fromJson(j: unknown): Netmap | null {
    const v = j as Partial<NetmapJson> | null;
    if (!v || typeof v !== "object" || !v.self || typeof v.self !== "object" || !Array.isArray(v.peers)) return null;
    const nm = new Netmap(v.self);
    for (const p of v.peers) if (p && typeof p.ID === "number") nm.peers.set(p.ID, p);
    nm.derpMap = v.derpMap ?? null;
    nm.packetFilter = Array.isArray(v.packetFilter) ? v.packetFilter : [];
    nm.sshPolicy = v.sshPolicy ?? null;
    nm.dnsConfig = v.dnsConfig ?? null;
    nm.domain = typeof v.domain === "string" ? v.domain : "";
    for (const u of v.userProfiles ?? []) nm.userProfiles.set(u.ID, u);
    return nm;
  }

  /** The serialisable form. */
  toJson(): NetmapJson {
    return {
      self: this.self,
      peers: [...this.peers.values()],
      derpMap: this.derpMap,
      packetFilter: this.packetFilter,
      sshPolicy: this.sshPolicy,
      dnsConfig: this.dnsConfig,
      domain: this.domain,
      userProfiles: [...this.userProfiles.values()],
    };
  }

  /** Applies a full or delta MapResponse (see the file comment). */
  apply(resp: MapResponse, wallNow: number): NetmapChange {
    const ch: NetmapChange = { self: false, peers: false, filter: false, derpMap: false, ssh: false, dns: false };
    if (resp.Node) {
      this.self = resp.Node;
      ch.self = true;
    }
    if (resp.DERPMap) {
      this.derpMap = resp.DERPMap;
      ch.derpMap = true;
    }
    if (resp.PacketFilter) {
      this.packetFilter = resp.PacketFilter;
      ch.filter = true;
    }
    if (resp.SSHPolicy) {
      this.sshPolicy = resp.SSHPolicy;
      ch.ssh = true;
    }
    if (resp.DNSConfig) {
      this.dnsConfig = resp.DNSConfig;
      ch.dns = true;
    }
    if (typeof resp.Domain === "string") {
      ch.dns ||= resp.Domain !== this.domain;
      this.domain = resp.Domain;
    }
    for (const u of resp.UserProfiles ?? []) this.userProfiles.set(u.ID, u);
    if (resp.Peers) {
      this.peers.clear();
      for (const p of resp.Peers) this.peers.set(p.ID, p);
      ch.peers = true;
    }
    for (const p of resp.PeersChanged ?? []) {
      this.peers.set(p.ID, p);
      ch.peers = true;
    }
    for (const id of resp.PeersRemoved ?? []) if (this.peers.delete(id)) ch.peers = true;
    for (const patch of resp.PeersChangedPatch ?? []) {
      const old = this.peers.get(patch.NodeID);
      if (!old) continue;
      const n: Node = { ...old };
      if (patch.Endpoints !== undefined) n.Endpoints = [...patch.Endpoints];
      if (patch.DERPRegion !== undefined) {
        if (patch.DERPRegion > 0) {
          n.HomeDERP = patch.DERPRegion;
          n.DERP = `127.3.3.40:${patch.DERPRegion}`;
        } else {
          delete n.HomeDERP;
          delete n.DERP;
        }
      }
      if (patch.DiscoKey !== undefined) n.DiscoKey = patch.DiscoKey;
      if (patch.Key !== undefined) n.Key = patch.Key;
      if (patch.KeySignature !== undefined) n.KeySignature = patch.KeySignature;
      if (patch.KeyExpiry !== undefined) n.KeyExpiry = patch.KeyExpiry;
      if (patch.Online !== undefined) n.Online = patch.Online;
      if (patch.LastSeen !== undefined) n.LastSeen = patch.LastSeen;
      if (patch.Cap !== undefined) n.Cap = patch.Cap;
      if (patch.CapMap !== undefined) n.CapMap = patch.CapMap;
      this.peers.set(n.ID, n);
      ch.peers = true;
    }
    for (const [id, on] of Object.entries(resp.OnlineChange ?? {})) {
      const p = this.peers.get(Number(id));
      if (p && typeof on === "boolean") this.peers.set(p.ID, { ...p, Online: on });
    }
    for (const [id, seen] of Object.entries(resp.PeerSeenChange ?? {})) {
      const p = this.peers.get(Number(id));
      if (p && seen === true) this.peers.set(p.ID, { ...p, LastSeen: new Date(wallNow).toISOString() });
    }
    return ch;
  }

  /** Whether the self node's key has expired at `wallNow` (Expired flag or KeyExpiry passed). */
  selfExpired(wallNow: number): boolean {
    if (this.self.Expired) return true;
    if (!this.self.KeyExpiry) return false;
    const t = Date.parse(this.self.KeyExpiry);
    return Number.isFinite(t) && t > 0 && t <= wallNow;
  }

  /** The peer with node key `key` ("nodekey:hex"), if any. */
  peerByKey(key: string): Node | undefined {
    for (const p of this.peers.values()) if (p.Key === key) return p;
    return undefined;
  }
}
