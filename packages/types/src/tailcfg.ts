/**
 * Control-plane wire types shaped like Tailscale's `tailcfg` package: the same JSON field
 * names (Go's default PascalCase, except where tailcfg sets a JSON tag), so policies,
 * tools and a future Tailscale-compatible control protocol carry over.
 *
 * Conventions (as tailcfg's JSON):
 * - keys are strings with a type prefix and lowercase hex: "nodekey:…", "mkey:…",
 *   "discokey:…" (32 bytes → 64 hex digits);
 * - times are RFC 3339 strings; an absent optional time means "zero";
 * - IP prefixes are "100.64.0.1/32" strings, endpoints "1.2.3.4:41641" / "[::1]:41641";
 * - fields marked optional are omitted when zero (Go's `omitempty`/`omitzero`).
 *
 * FilterRule and the SSH types live in ./tailcfg-filter.ts (owned by the policy work).
 */
import type { FilterRule, SSHRule } from "./tailcfg-filter.js";

/** tailcfg.SSHPolicy: a node's SSH rules, first match wins (JSON key "rules"). */
export interface SSHPolicy {
  rules: SSHRule[];
}

/** A node public key, "nodekey:" + 64 lowercase hex digits. */
export type NodeKeyString = `nodekey:${string}`;
/** A machine public key (the Noise static key), "mkey:" + 64 lowercase hex digits. */
export type MachineKeyString = `mkey:${string}`;
/** A disco public key, "discokey:" + 64 lowercase hex digits. */
export type DiscoKeyString = `discokey:${string}`;

/** Key prefixes of the three key kinds, as tailcfg writes them. */
export const KEY_PREFIX = { node: "nodekey:", machine: "mkey:", disco: "discokey:" } as const;

/** Which kind of key a prefixed key string carries. */
export type KeyKind = keyof typeof KEY_PREFIX;

const HEX64 = /^[0-9a-f]{64}$/;

/** Formats 32 raw key bytes as a prefixed key string ("nodekey:hex", …). */
export function formatKey<K extends KeyKind>(kind: K, raw: Uint8Array): `${(typeof KEY_PREFIX)[K]}${string}` {
  if (raw.length !== 32) throw new RangeError(`${kind} key must be 32 bytes, got ${raw.length}`);
  let hex = "";
  for (const b of raw) hex += b.toString(16).padStart(2, "0");
  return `${KEY_PREFIX[kind]}${hex}` as `${(typeof KEY_PREFIX)[K]}${string}`;
}

/** Parses a prefixed key string into 32 raw bytes; null when malformed or of another kind. */
export function parseKey(kind: KeyKind, s: unknown): Uint8Array | null {
  if (typeof s !== "string") return null;
  const prefix = KEY_PREFIX[kind];
  if (!s.startsWith(prefix)) return null;
  const hex = s.slice(prefix.length);
  if (!HEX64.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** True when `s` is a well-formed prefixed key string of `kind`. */
export function isKeyString(kind: KeyKind, s: unknown): boolean {
  return parseKey(kind, s) !== null;
}

/** tailcfg.NodeID: the server's numeric node id. */
export type NodeID = number;
/** tailcfg.StableNodeID: an opaque stable node id string. */
export type StableNodeID = string;
/** tailcfg.UserID. */
export type UserID = number;
/** tailcfg.DERPRegionID. */
export type DERPRegionID = number;
/** tailcfg.CapabilityVersion: the client's protocol capability version. */
export type CapabilityVersion = number;

/** The DERP pseudo-endpoint IP: "127.3.3.40:<regionID>" names a DERP region. */
export const DERP_MAGIC_IP = "127.3.3.40";

/** tailcfg.NodeCapMap: capability name → list of raw JSON values (often empty). */
export type NodeCapMap = Record<string, unknown[]>;

/** tailcfg.User. */
export interface User {
  ID: UserID;
  DisplayName: string;
  ProfilePicURL?: string;
  Created?: string;
}

/** tailcfg.Login. */
export interface Login {
  ID: number;
  Provider: string;
  LoginName: string;
  DisplayName: string;
  ProfilePicURL?: string;
}

/** tailcfg.UserProfile: what peers are shown about a user. */
export interface UserProfile {
  ID: UserID;
  /** "alice@example.com"; display only. */
  LoginName: string;
  DisplayName: string;
  ProfilePicURL?: string;
  Groups?: string[];
}

/** tailcfg.Service: a service a host advertises. */
export interface Service {
  Proto: string;
  Port: number;
  Description?: string;
}

/** tailcfg.NetInfo: the node's view of its network (subset). */
export interface NetInfo {
  MappingVariesByDestIP?: boolean;
  WorkingIPv6?: boolean;
  OSHasIPv6?: boolean;
  WorkingUDP?: boolean;
  WorkingICMPv4?: boolean;
  HavePortMap?: boolean;
  UPnP?: boolean;
  PMP?: boolean;
  PCP?: boolean;
  PreferredDERP?: DERPRegionID;
  LinkType?: string;
  DERPLatency?: Record<string, number>;
  FirewallMode?: string;
}

/** tailcfg.Hostinfo: what a node says about itself (subset of the fields Lattice uses). */
export interface Hostinfo {
  IPNVersion?: string;
  FrontendLogID?: string;
  BackendLogID?: string;
  OS?: string;
  OSVersion?: string;
  Container?: boolean;
  Env?: string;
  Distro?: string;
  DistroVersion?: string;
  DistroCodeName?: string;
  App?: string;
  Desktop?: boolean;
  Package?: string;
  DeviceModel?: string;
  PushDeviceToken?: string;
  Hostname?: string;
  ShieldsUp?: boolean;
  ShareeNode?: boolean;
  NoLogsNoSupport?: boolean;
  WireIngress?: boolean;
  IngressEnabled?: boolean;
  AllowsUpdate?: boolean;
  Machine?: string;
  GoArch?: string;
  GoArchVar?: string;
  GoVersion?: string;
  /** IP ranges this node can route (subnet router / exit node). */
  RoutableIPs?: string[];
  /** ACL tags this node wants to claim. */
  RequestTags?: string[];
  WoLMACs?: string[];
  Services?: Service[];
  NetInfo?: NetInfo;
  /** SSH host keys ("ssh-ed25519 AAAA…"); tailcfg's JSON tag is lowercase. */
  sshHostKeys?: string[];
  Cloud?: string;
  Userspace?: boolean;
  UserspaceRouter?: boolean;
  AppConnector?: boolean;
  ServicesHash?: string;
  PeerRelay?: boolean;
  ExitNodeID?: StableNodeID;
  Location?: Record<string, unknown>;
  TPM?: Record<string, unknown>;
  StateEncrypted?: boolean;
}

/** tailcfg.Node: one node as seen in a netmap (itself or a peer). */
export interface Node {
  ID: NodeID;
  StableID: StableNodeID;
  /** MagicDNS FQDN with trailing dot: "host.tailnet.example.". */
  Name: string;
  User: UserID;
  Sharer?: UserID;
  Key: NodeKeyString;
  /** RFC 3339; absent when the key does not expire. */
  KeyExpiry?: string;
  KeySignature?: string;
  Machine?: MachineKeyString;
  DiscoKey?: DiscoKeyString;
  /** The node's own tailnet addresses as /32 and /128 prefixes. */
  Addresses: string[];
  /** Addresses plus approved routes this node may source traffic from. */
  AllowedIPs: string[];
  /** "ip:port" candidates (STUN, local). */
  Endpoints?: string[];
  /** Legacy "127.3.3.40:<region>" home DERP string (JSON name "DERP"). */
  DERP?: string;
  HomeDERP?: DERPRegionID;
  Hostinfo?: Hostinfo;
  Created?: string;
  Cap?: CapabilityVersion;
  Tags?: string[];
  PrimaryRoutes?: string[];
  LastSeen?: string;
  Online?: boolean;
  MachineAuthorized?: boolean;
  Capabilities?: string[];
  CapMap?: NodeCapMap;
  UnsignedPeerAPIOnly?: boolean;
  ComputedName?: string;
  ComputedNameWithHost?: string;
  DataPlaneAuditLogID?: string;
  Expired?: boolean;
  IsWireGuardOnly?: boolean;
  IsJailed?: boolean;
  /**
   * Lattice extension (not in tailcfg): the node was registered with an ephemeral auth
   * key; it is deleted when it logs out or stays offline. latticed logs such a node out
   * on `down` and on shutdown.
   */
  Ephemeral?: boolean;
}

/** tailcfg.RegisterResponseAuth: credentials presented at registration. */
export interface RegisterResponseAuth {
  /** A pre-authentication key ("auth key"). */
  AuthKey?: string;
}

/**
 * tailcfg.RegisterRequest, sent as `POST /machine/register` over the Noise channel.
 * A node registers its NodeKey under its machine key (learned from the Noise handshake),
 * with an auth key or interactively (the response's AuthURL, then a Followup request).
 */
export interface RegisterRequest {
  Version: CapabilityVersion;
  NodeKey: NodeKeyString;
  /** The previous node key when rotating, else zero/absent. */
  OldNodeKey?: NodeKeyString | "";
  NLKey?: string;
  Auth?: RegisterResponseAuth | null;
  /** Requested key expiry; a time in the past means "log out" (expire the key now). */
  Expiry?: string;
  /** The AuthURL of an earlier response: wait until that login completes. */
  Followup?: string;
  Hostinfo?: Hostinfo | null;
  Ephemeral?: boolean;
  NodeKeySignature?: string | null;
  SignatureType?: string;
  Timestamp?: string | null;
  Tailnet?: string;
}

/** tailcfg.RegisterResponse. */
export interface RegisterResponse {
  User: User;
  Login: Login;
  /** The NodeKey needs to be replaced (expired). */
  NodeKeyExpired: boolean;
  /** The node is approved and may request a map. */
  MachineAuthorized: boolean;
  /** When set, authorization is pending: a person must visit this URL. */
  AuthURL: string;
  NodeKeySignature?: string | null;
  /** A human-readable error; empty on success. */
  Error: string;
}

/** tailcfg.EndpointType values. */
export const EndpointType = {
  Unknown: 0,
  Local: 1,
  STUN: 2,
  Portmapped: 3,
  STUN4LocalPort: 4,
  ExplicitConf: 5,
} as const;

/** tailcfg.MapRequest, sent as `POST /machine/map` over the Noise channel. */
export interface MapRequest {
  Version: CapabilityVersion;
  /** "zstd" or "" (Lattice only serves uncompressed). */
  Compress?: string;
  /** Whether the server should send keep-alives on a streaming map. */
  KeepAlive?: boolean;
  NodeKey: NodeKeyString;
  DiscoKey?: DiscoKeyString;
  /** Long-poll: full MapResponse, then deltas until the connection closes. */
  Stream?: boolean;
  Hostinfo?: Hostinfo | null;
  MapSessionHandle?: string;
  MapSessionSeq?: number;
  Endpoints?: string[];
  EndpointTypes?: number[];
  TKAHead?: string;
  /** Do not update the node's endpoints/hostinfo from this request. */
  ReadOnly?: boolean;
  /** The client does not want peers (endpoint update only). */
  OmitPeers?: boolean;
  DebugFlags?: string[];
  ConnectionHandleForTest?: string;
}

/** tailcfg.PeerChange: a small patch to one peer (MapResponse.PeersChangedPatch). */
export interface PeerChange {
  NodeID: NodeID;
  DERPRegion?: DERPRegionID;
  Cap?: CapabilityVersion;
  CapMap?: NodeCapMap;
  Endpoints?: string[];
  Key?: NodeKeyString;
  KeySignature?: string;
  DiscoKey?: DiscoKeyString;
  Online?: boolean;
  LastSeen?: string;
  KeyExpiry?: string;
}

/** dnstype.Resolver. */
export interface DNSResolver {
  /** "1.1.1.1", "1.1.1.1:53", "https://…", "tls://…". */
  Addr?: string;
  BootstrapResolution?: string[];
  UseWithExitNode?: boolean;
}

/** tailcfg.DNSRecord: an extra MagicDNS record. */
export interface DNSRecord {
  Name: string;
  /** "" (A/AAAA by value) or "AAAA"/"A". */
  Type?: string;
  Value: string;
}

/** tailcfg.DNSConfig. */
export interface DNSConfig {
  Resolvers?: DNSResolver[];
  /** Split DNS: domain suffix → resolvers (empty list = MagicDNS resolves it). */
  Routes?: Record<string, DNSResolver[]>;
  FallbackResolvers?: DNSResolver[];
  /** Search domains. */
  Domains?: string[];
  /** MagicDNS enabled. */
  Proxied?: boolean;
  Nameservers?: string[];
  CertDomains?: string[];
  ExtraRecords?: DNSRecord[];
  ExitNodeFilteredSet?: string[];
}

/** tailcfg.DERPNode: one relay server of a region. */
export interface DERPNode {
  Name: string;
  RegionID: DERPRegionID;
  HostName: string;
  CertName?: string;
  IPv4?: string;
  IPv6?: string;
  /** 0 = default 3478; −1 = disabled. */
  STUNPort?: number;
  STUNOnly?: boolean;
  /** 0 = default 443. */
  DERPPort?: number;
  /** TLS without certificate verification (Tailscale's meaning: tests, self-signed labs). */
  InsecureForTests?: boolean;
  /**
   * Lattice extension (not in tailcfg): dial the relay with plain `http://` instead of
   * `https://` (lattice-control without TLS, tests, labs). Tailscale clients ignore it.
   */
  InsecureHTTP?: boolean;
  STUNTestIP?: string;
  CanPort80?: boolean;
}

/** tailcfg.DERPRegion. Self-hosted region ids are 900–999. */
export interface DERPRegion {
  RegionID: DERPRegionID;
  RegionCode: string;
  RegionName: string;
  Latitude?: number;
  Longitude?: number;
  Avoid?: boolean;
  NoMeasureNoHome?: boolean;
  Nodes: DERPNode[];
}

/** tailcfg.DERPHomeParams. */
export interface DERPHomeParams {
  RegionScore?: Record<string, number>;
}

/** tailcfg.DERPMap: region id (decimal string key in JSON) → region. */
export interface DERPMap {
  HomeParams?: DERPHomeParams;
  Regions: Record<string, DERPRegion>;
  omitDefaultRegions?: boolean;
}

/** tailcfg.PingRequest: the server asks the node to ping or hit a URL. */
export interface PingRequest {
  URL: string;
  URLIsNoise?: boolean;
  Log?: boolean;
  Types?: string;
  IP?: string;
}

/**
 * tailcfg.MapResponse. The first message of a stream is "full" (Node, Peers, DERPMap,
 * DNSConfig, PacketFilter, SSHPolicy, Domain, UserProfiles); later ones are deltas that
 * carry only what changed. Absent fields mean "unchanged"; `PacketFilter` present (even
 * empty) replaces the filter; `Peers` present replaces the whole peer list.
 */
export interface MapResponse {
  MapSessionHandle?: string;
  Seq?: number;
  /** Nothing else set: just a keep-alive. */
  KeepAlive?: boolean;
  PingRequest?: PingRequest;
  PopBrowserURL?: string;
  Node?: Node;
  DERPMap?: DERPMap;
  /** Full peer list (replaces the previous one). */
  Peers?: Node[];
  /** Peers added or replaced in full. */
  PeersChanged?: Node[];
  /** Peers removed, by NodeID. */
  PeersRemoved?: NodeID[];
  /** Small patches to existing peers. */
  PeersChangedPatch?: PeerChange[];
  /** NodeID (decimal string key) → seen recently. */
  PeerSeenChange?: Record<string, boolean>;
  /** NodeID (decimal string key) → online. */
  OnlineChange?: Record<string, boolean>;
  DNSConfig?: DNSConfig;
  /** The tailnet's MagicDNS domain ("tailnet.example"). */
  Domain?: string;
  CollectServices?: string;
  /** The node's packet filter (replaces the previous one when present). */
  PacketFilter?: FilterRule[];
  PacketFilters?: Record<string, FilterRule[] | null>;
  UserProfiles?: UserProfile[];
  Health?: string[];
  /** The node's SSH policy (replaces the previous one when present). */
  SSHPolicy?: SSHPolicy;
  ControlTime?: string;
  Debug?: Record<string, unknown>;
}

/** tailcfg.OverTLSPublicKeyResponse: the JSON body of `GET /key?v=N`. */
export interface OverTLSPublicKeyResponse {
  /** Always the zero key for Lattice (no legacy NaCl protocol). */
  legacyPublicKey: MachineKeyString;
  /** The server's Noise static public key. */
  publicKey: MachineKeyString;
}

/** tailcfg.EarlyNoise (not sent by Lattice yet; documented for compatibility). */
export interface EarlyNoise {
  nodeKeyChallenge: string;
}
