/**
 * Builds `GET /localapi/v0/status` (docs/localapi.md `Status`, Tailscale's
 * ipnstate.Status field names) from the backend state, the netmap and per-peer runtime
 * data (device counters, magicsock paths). Pure: the caller passes clocks and lookups.
 */
import type { DERPMap, Node } from "@lattice/types";
import type { PeerCounters } from "./engine.js";
import type { PeerPath } from "./magic.js";
import type { Netmap } from "./netmap.js";
import { isExitRoute } from "./routes.js";

/** Backend states (ipn.State names). */
export type BackendState = "NoState" | "NeedsLogin" | "NeedsMachineAuth" | "Stopped" | "Starting" | "Running";

/** Go's zero time, as Tailscale prints it. */
export const ZERO_TIME = "0001-01-01T00:00:00Z";
/** A peer is Active when it sent or received within this long. */
export const ACTIVE_WINDOW_MS = 45_000;

/** ipnstate.PeerStatus (the fields Lattice fills). */
export interface PeerStatus {
  ID: string;
  PublicKey: string;
  HostName: string;
  DNSName: string;
  OS: string;
  UserID: number;
  TailscaleIPs: string[];
  AllowedIPs: string[];
  Tags?: string[];
  PrimaryRoutes?: string[];
  Addrs: string[];
  CurAddr: string;
  Relay: string;
  RxBytes: number;
  TxBytes: number;
  Created: string;
  LastWrite: string;
  LastSeen: string;
  LastHandshake: string;
  Online: boolean;
  Active: boolean;
  /** This peer is the selected exit node. */
  ExitNode: boolean;
  /** This peer offers an (approved) exit node. */
  ExitNodeOption: boolean;
  KeyExpiry?: string;
  Expired: boolean;
  InNetworkMap: true;
  InMagicSock: boolean;
  InEngine: boolean;
  sshHostKeys?: string[];
}

/** ipnstate.Status (the fields Lattice fills). */
export interface Status {
  Version: string;
  TUN: boolean;
  BackendState: BackendState;
  HaveNodeKey: boolean;
  AuthURL: string;
  TailscaleIPs: string[];
  Self: PeerStatus | null;
  Health: string[];
  MagicDNSSuffix: string;
  CurrentTailnet: { Name: string; MagicDNSSuffix: string; MagicDNSEnabled: boolean } | null;
  Peer?: Record<string, PeerStatus>;
  /** Only while an exit node is selected (Tailscale's ipnstate.ExitNodeStatus; TailscaleIPs as prefixes). */
  ExitNodeStatus?: { ID: string; Online: boolean; TailscaleIPs: string[] };
  User: Record<string, { ID: number; LoginName: string; DisplayName: string }>;
  ClientVersion: null;
  /** How the host resolver is configured: "direct" | "resolved" | "resolvconf" | "off" (dns-status Mode). */
  DNSMode: string;
}

/** Everything {@link buildStatus} reads. */
export interface StatusInput {
  version: string;
  backendState: BackendState;
  authURL: string;
  haveNodeKey: boolean;
  tun: boolean;
  health: string[];
  netmap: Netmap | null;
  /** Our own endpoints and home DERP (magicsock). */
  selfEndpoints: string[];
  selfHomeDerp: number;
  /** Device counters and magicsock path of a peer, by node key hex. */
  counters: Map<string, PeerCounters>;
  path: (nodeKeyHex: string) => PeerPath | undefined;
  /** Monotonic ms (same clock as PeerPath times) and wall-clock ms. */
  now: number;
  wallNow: number;
  includePeers: boolean;
  /** dns-status Mode (default "off"). */
  dnsMode?: string;
  /** StableNodeID of the selected exit node, "" = none. */
  exitNodeId?: string;
}

/** "100.64.0.1/32" → "100.64.0.1". */
export function stripPrefix(a: string): string {
  const i = a.indexOf("/");
  return i < 0 ? a : a.slice(0, i);
}

/** The region code of a DERP region id, "" when unknown or 0. */
export function regionCode(m: DERPMap | null, id: number): string {
  if (!m || id <= 0) return "";
  return m.Regions[String(id)]?.RegionCode ?? "";
}

function iso(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : ZERO_TIME;
}

function basePeer(n: Node, derp: DERPMap | null): PeerStatus {
  const allowed = n.AllowedIPs ?? [];
  const ps: PeerStatus = {
    ID: n.StableID,
    PublicKey: n.Key,
    HostName: n.Hostinfo?.Hostname ?? n.ComputedName ?? "",
    DNSName: n.Name,
    OS: n.Hostinfo?.OS ?? "",
    UserID: n.User,
    TailscaleIPs: n.Addresses.map(stripPrefix),
    AllowedIPs: [...allowed],
    Addrs: [...(n.Endpoints ?? [])],
    CurAddr: "",
    Relay: regionCode(derp, n.HomeDERP ?? 0),
    RxBytes: 0,
    TxBytes: 0,
    Created: n.Created ?? ZERO_TIME,
    LastWrite: ZERO_TIME,
    LastSeen: n.LastSeen ?? ZERO_TIME,
    LastHandshake: ZERO_TIME,
    Online: n.Online === true,
    Active: false,
    ExitNode: false,
    ExitNodeOption: allowed.some(isExitRoute),
    Expired: n.Expired === true,
    InNetworkMap: true,
    InMagicSock: false,
    InEngine: false,
  };
  if (n.Tags?.length) ps.Tags = [...n.Tags];
  // PrimaryRoutes: the approved subnet routes (never the exit routes).
  const primary = (n.PrimaryRoutes ?? []).filter((r) => !isExitRoute(r));
  if (primary.length > 0) ps.PrimaryRoutes = primary;
  if (n.KeyExpiry) ps.KeyExpiry = n.KeyExpiry;
  if (n.Hostinfo?.sshHostKeys?.length) ps.sshHostKeys = [...n.Hostinfo.sshHostKeys];
  return ps;
}

/** Builds the Status (see the file comment). */
export function buildStatus(s: StatusInput): Status {
  const nm = s.netmap;
  const derp = nm?.derpMap ?? null;
  const users: Status["User"] = {};
  const addUser = (id: number) => {
    const u = nm?.userProfiles.get(id);
    if (u) users[String(id)] = { ID: u.ID, LoginName: u.LoginName, DisplayName: u.DisplayName };
  };
  let self: PeerStatus | null = null;
  if (nm) {
    self = basePeer(nm.self, derp);
    self.Addrs = [...s.selfEndpoints];
    self.Relay = regionCode(derp, s.selfHomeDerp);
    self.Online = s.backendState === "Running";
    self.InMagicSock = true;
    self.InEngine = true;
    addUser(nm.self.User);
  }
  const st: Status = {
    Version: s.version,
    TUN: s.tun,
    BackendState: s.backendState,
    HaveNodeKey: s.haveNodeKey,
    AuthURL: s.authURL,
    TailscaleIPs: nm ? nm.self.Addresses.map(stripPrefix) : [],
    Self: self,
    Health: [...s.health],
    MagicDNSSuffix: nm?.domain ?? "",
    CurrentTailnet: nm ? { Name: nm.domain, MagicDNSSuffix: nm.domain, MagicDNSEnabled: nm.dnsConfig?.Proxied === true } : null,
    User: users,
    ClientVersion: null,
    DNSMode: s.dnsMode ?? "off",
  };
  const exitId = s.exitNodeId ?? "";
  if (exitId !== "" && nm) {
    const exit = [...nm.peers.values()].find((p) => p.StableID === exitId);
    st.ExitNodeStatus = { ID: exitId, Online: exit?.Online === true, TailscaleIPs: exit ? [...exit.Addresses] : [] };
  }
  if (!s.includePeers) return st;
  const peers: Record<string, PeerStatus> = {};
  // While stopped or logged out the engine has no peers; the netmap's are still listed.
  const engineOn = s.backendState === "Running";
  for (const n of nm?.peers.values() ?? []) {
    const ps = basePeer(n, derp);
    ps.ExitNode = exitId !== "" && n.StableID === exitId;
    const hex = n.Key.slice("nodekey:".length);
    const c = engineOn ? s.counters.get(hex) : undefined;
    const path = engineOn ? s.path(hex) : undefined;
    if (c) {
      ps.RxBytes = c.rxBytes;
      ps.TxBytes = c.txBytes;
      ps.LastHandshake = iso(c.lastHandshake);
      ps.InEngine = true;
    }
    if (path) {
      ps.InMagicSock = true;
      ps.CurAddr = path.curAddr;
      if (path.derpRegionId > 0) ps.Relay = regionCode(derp, path.derpRegionId);
      if (path.addrs.length > 0) ps.Addrs = [...path.addrs];
      const last = Math.max(path.lastRecv, path.lastSend);
      ps.Active = last > 0 && s.now - last < ACTIVE_WINDOW_MS;
      if (path.lastSend > 0) ps.LastWrite = iso(s.wallNow - (s.now - path.lastSend));
    }
    peers[n.Key] = ps;
    addUser(n.User);
  }
  st.Peer = peers;
  return st;
}
