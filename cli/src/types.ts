/**
 * The LocalAPI's JSON shapes, as docs/localapi.md defines them (Tailscale's `ipnstate.Status`,
 * `ipn.Prefs`, `tailcfg.PingResult`, `netcheck.Report`, `apitype.WhoIsResponse`, the fields
 * Lattice fills). Timestamps are RFC 3339 strings; the zero time is "0001-01-01T00:00:00Z".
 */

export type BackendState = "NoState" | "NeedsLogin" | "NeedsMachineAuth" | "Stopped" | "Starting" | "Running";

export interface Prefs {
  ControlURL: string;
  WantRunning: boolean;
  Hostname: string;
  RunSSH: boolean;
  AdvertiseTags: string[];
  RouteAll: boolean;
  CorpDNS: boolean;
  Ephemeral: boolean;
  /**
   * Canonical prefixes this node offers to route (host bits zero); the exit node is the pair
   * "0.0.0.0/0" + "::/0" in this list (Tailscale's encoding). Absent from an older daemon.
   */
  AdvertiseRoutes?: string[] | null;
  /** StableNodeID of the selected exit node, "" for none (set by the daemon from ExitNodeIP). */
  ExitNodeID?: string;
  /** The selected exit node's tailnet IP, "" for none. */
  ExitNodeIP?: string;
  /** With an exit node: keep the directly connected LAN outside the tunnel. */
  ExitNodeAllowLANAccess?: boolean;
  /** Subnet router: forward with the clients' tailnet source addresses (no MASQUERADE). */
  NoSNAT?: boolean;
}

/** The prefs `up` and `set` change (Tailscale's ipn.Prefs names). */
export interface SettablePrefs {
  Hostname: string;
  RunSSH: boolean;
  AdvertiseTags: string[];
  RouteAll: boolean;
  CorpDNS: boolean;
  AdvertiseRoutes: string[];
  /** Clients send the exit node's tailnet IP; "" clears ExitNodeID too. */
  ExitNodeIP: string;
  ExitNodeAllowLANAccess: boolean;
  NoSNAT: boolean;
}

/** PATCH /localapi/v0/prefs body: only the fields given change. */
export type PrefsPatch = Partial<SettablePrefs>;

export interface UpRequest extends PrefsPatch {
  ControlURL?: string;
  AuthKey?: string;
  Reset?: boolean;
  ForceReauth?: boolean;
}

export interface UpResponse {
  BackendState: BackendState;
  AuthURL: string;
}

export interface PeerStatus {
  ID: string;
  PublicKey: string;
  HostName: string;
  DNSName: string;
  OS: string;
  UserID: number;
  TailscaleIPs: string[] | null;
  AllowedIPs?: string[] | null;
  Tags?: string[] | null;
  PrimaryRoutes?: string[] | null;
  Addrs?: string[] | null;
  CurAddr: string;
  Relay: string;
  RxBytes: number;
  TxBytes: number;
  Created?: string;
  LastWrite?: string;
  LastSeen?: string;
  LastHandshake?: string;
  Online: boolean;
  Active: boolean;
  ExitNode?: boolean;
  ExitNodeOption?: boolean;
  KeyExpiry?: string;
  Expired?: boolean;
  InNetworkMap?: boolean;
  InMagicSock?: boolean;
  InEngine?: boolean;
  sshHostKeys?: string[];
}

export interface UserProfile {
  ID: number;
  LoginName: string;
  DisplayName: string;
}

export interface Status {
  Version: string;
  TUN: boolean;
  BackendState: BackendState;
  HaveNodeKey: boolean;
  AuthURL: string;
  TailscaleIPs: string[] | null;
  Self: PeerStatus | null;
  Health: string[] | null;
  MagicDNSSuffix: string;
  CurrentTailnet: { Name: string; MagicDNSSuffix: string; MagicDNSEnabled: boolean } | null;
  Peer?: Record<string, PeerStatus> | null;
  /** Only while an exit node is selected. */
  ExitNodeStatus?: ExitNodeStatus | null;
  User?: Record<string, UserProfile> | null;
  ClientVersion: null;
  /** Host resolver integration: "direct" | "resolved" | "resolvconf" | "off" (absent from older daemons). */
  DNSMode?: string;
}

/** GET /localapi/v0/dns-status. */
export interface DnsStatus {
  MagicDNS: boolean;
  Domain: string;
  Mode: string;
  ResolvConf: string;
  Resolvers: string[];
  Routes: Record<string, string[]>;
  SearchDomains: string[];
  Nameservers: string[];
}

/** ipnstate.ExitNodeStatus: the selected exit node. */
export interface ExitNodeStatus {
  ID: string;
  Online: boolean;
  TailscaleIPs: string[] | null;
}

/** GET /localapi/v0/suggest-exit-node (Tailscale's apitype.ExitNodeSuggestionResponse). */
export interface ExitNodeSuggestion {
  ID: string;
  /** FQDN with the trailing dot. */
  Name: string;
  Location: unknown;
}

export interface PingResult {
  IP: string;
  NodeIP: string;
  NodeName: string;
  Err?: string;
  LatencySeconds: number;
  Endpoint: string;
  DERPRegionID: number;
  DERPRegionCode: string;
  IsLocalIP?: boolean;
}

export interface NetcheckReport {
  UDP: boolean;
  IPv4: boolean;
  IPv6: boolean;
  GlobalV4: string;
  GlobalV6: string;
  MappingVariesByDestIP: boolean | null;
  PreferredDERP: number;
  /** Region id → latency in nanoseconds. */
  RegionLatency: Record<string, number> | null;
  RegionV4Latency?: Record<string, number> | null;
  RegionV6Latency?: Record<string, number> | null;
}

/** The parts of tailcfg.Node `whois` prints. */
export interface WhoIsNode {
  ID?: number;
  StableID: string;
  Name: string;
  Addresses: string[] | null;
  AllowedIPs?: string[] | null;
  Tags?: string[] | null;
}

export interface WhoIsResponse {
  Node: WhoIsNode;
  UserProfile: UserProfile;
  CapMap?: Record<string, unknown[] | null> | null;
}

export interface VersionResponse {
  Version: string;
  Daemon: string;
}
