/**
 * The part of @lattice/magicsock latticed uses, as a narrow interface the real MagicSock
 * satisfies structurally (so the backend and engine are tested with fakes).
 */
import type { DERPMap } from "@lattice/types";
import type { Endpoint } from "@lattice/netaddr";
import type { Bind } from "@lattice/wireguard";

/** The path and report types are @lattice/magicsock's own. */
export type { MagicPeer, PeerPath, NetcheckReport, PingResult as MagicPingResult } from "@lattice/magicsock";
import type { MagicPeer, PeerPath, NetcheckReport, PingResult as MagicPingResult } from "@lattice/magicsock";

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
