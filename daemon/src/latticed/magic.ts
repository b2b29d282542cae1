/**
 * The part of @lattice/magicsock latticed uses, as a narrow interface the real MagicSock
 * satisfies structurally (so the backend and engine are tested with fakes).
 */
import type { DERPMap } from "@lattice/types";
import type { Endpoint } from "@lattice/netaddr";
import type { Bind } from "@lattice/wireguard";

/** A peer as magicsock needs it (from a netmap Node). */
export interface MagicPeer {
  /** 32-byte WireGuard public key. */
  nodeKey: Uint8Array;
  /** 32-byte disco key, null = none. */
  discoKey: Uint8Array | null;
  /** "ip:port" / "[v6]:port" candidates. */
  endpoints: readonly string[];
  /** Home DERP region id, 0 = none. */
  homeDerp: number;
}

/** What status shows of a peer's path. */
export interface PeerPath {
  /** "ip:port" of the direct path in use, "" when relayed or unknown. */
  curAddr: string;
  /** DERP region in use or the peer's home, 0 = none. */
  derpRegionId: number;
  /** Last receive / send, now() ms; 0 = never. */
  lastRecv: number;
  lastSend: number;
  /** Known UDP endpoints. */
  addrs: string[];
}

/** docs/localapi.md NetcheckReport. */
export interface NetcheckReport {
  UDP: boolean;
  IPv4: boolean;
  IPv6: boolean;
  GlobalV4: string;
  GlobalV6: string;
  MappingVariesByDestIP: boolean | null;
  PreferredDERP: number;
  RegionLatency: Record<string, number>;
  RegionV4Latency: Record<string, number>;
  RegionV6Latency: Record<string, number>;
}

/** Result of a disco ping. */
export interface MagicPingResult {
  latencyMs: number;
  /** "ip:port" when direct, "" via DERP. */
  endpoint: string;
  /** 0 when direct. */
  derpRegionId: number;
}

/** The subset of MagicSock latticed uses (a Bind for the device plus path management). */
export interface MagicConn extends Bind {
  /** false: no disco; latticed then answers disco pings with ICMP. MagicSock leaves it undefined. */
  readonly hasDisco?: boolean;
  setNodePrivateKey(k: Uint8Array): void;
  setDerpMap(m: DERPMap): void;
  setPeers(peers: readonly MagicPeer[]): void;
  peerEndpoint(nodeKey: Uint8Array): Endpoint;
  ping(nodeKey: Uint8Array, timeoutMs: number): Promise<MagicPingResult>;
  peerPath(nodeKey: Uint8Array): PeerPath | undefined;
  endpoints(): string[];
  homeDerp(): number;
  netcheck(): Promise<NetcheckReport>;
  stats(): Record<string, number>;
}
