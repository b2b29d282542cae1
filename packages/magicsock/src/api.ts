/** Public shapes of @lattice/magicsock (see MAGICSOCK-API.md, the contract latticed codes against). */

/** A peer as the netmap describes it (tailcfg.Node → this, done by latticed). */
export interface MagicPeer {
  /** 32-byte WireGuard public key (tailcfg Node.Key). */
  readonly nodeKey: Uint8Array;
  /** 32 bytes (Node.DiscoKey); null = no disco: DERP + listed endpoints only. */
  readonly discoKey: Uint8Array | null;
  /** Node.Endpoints, "ip:port" / "[v6]:port"; unparseable entries are skipped and counted. */
  readonly endpoints: readonly string[];
  /** Node.HomeDERP region id, 0 = none. */
  readonly homeDerp: number;
}

/** What status shows for a peer. */
export interface PeerPath {
  /** "ip:port" of the trusted direct path in use, "" when relayed or unknown. */
  curAddr: string;
  /** DERP region used for the peer (its home, else where we heard it), 0 none. */
  derpRegionId: number;
  /** now() ms of the last WireGuard datagram from / to the peer, 0 never. */
  lastRecv: number;
  lastSend: number;
  /** Candidate addresses ("ip:port"). */
  addrs: string[];
}

/** Result of {@link MagicSock.ping}. */
export interface PingResult {
  latencyMs: number;
  /** "ip:port" of the direct path that answered, "" via DERP. */
  endpoint: string;
  /** Region that answered, 0 when direct. */
  derpRegionId: number;
}

/** docs/localapi.md NetcheckReport (Tailscale's netcheck.Report subset); latencies in ns. */
export interface NetcheckReport {
  UDP: boolean;
  IPv4: boolean;
  IPv6: boolean;
  /** "ip:port" STUN saw for us over IPv4, "" unknown. */
  GlobalV4: string;
  GlobalV6: string;
  /** Whether two STUN servers saw different mapped addresses; null with fewer than two answers. */
  MappingVariesByDestIP: boolean | null;
  PreferredDERP: number;
  RegionLatency: Record<string, number>;
  RegionV4Latency: Record<string, number>;
  RegionV6Latency: Record<string, number>;
}

/** Logger shape (pino-compatible subset). */
export interface MagicLog {
  debug(o: object, m?: string): void;
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}
