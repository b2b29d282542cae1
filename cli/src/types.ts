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
}

/** PATCH /localapi/v0/prefs body: only the fields given change. */
export type PrefsPatch = Partial<Pick<Prefs, "Hostname" | "RunSSH" | "AdvertiseTags" | "RouteAll" | "CorpDNS">>;

export interface UpRequest {
  ControlURL?: string;
  AuthKey?: string;
  Hostname?: string;
  RunSSH?: boolean;
  AdvertiseTags?: string[];
  RouteAll?: boolean;
  CorpDNS?: boolean;
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
