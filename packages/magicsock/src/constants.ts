/**
 * magicsock timings, after Tailscale's wgengine/magicsock (endpoint.go, magicsock.go,
 * derp.go) and tsconst/ping.go. All durations in milliseconds.
 */

/** At most one discovery ping per candidate address per this long (endpoint.go discoPingInterval). */
export const DISCO_PING_INTERVAL = 5_000;
/** A ping without pong is forgotten after this (pingTimeoutDuration). */
export const PING_TIMEOUT = 5_000;
/** A pong makes its path trusted for this long (trustUDPAddrDuration). */
export const TRUST_UDP_ADDR_DURATION = 6_500;
/** While a peer is active its best path is pinged this often (heartbeatInterval). */
export const HEARTBEAT_INTERVAL = 3_000;
/** A peer we have not sent to for this long is idle: heartbeats stop (sessionActiveTimeout). */
export const SESSION_ACTIVE_TIMEOUT = 45_000;
/** A full ping round (upgrade attempt) at least this often while active (upgradeUDPDirectInterval). */
export const UPGRADE_INTERVAL = 60_000;
/** A best path at or below this latency is not re-probed for upgrades (goodEnoughLatency). */
export const GOOD_ENOUGH_LATENCY = 5;
/** Our endpoints older than this are re-STUNed before a CallMeMaybe (endpointsFreshEnoughDuration). */
export const ENDPOINTS_FRESH = 27_000;
/** A CallMeMaybe waiting for a re-STUN goes out anyway after this. */
export const CMM_STUN_WAIT = 2_000;
/** A path switch needs a gain above this fraction of the current path's score (betterAddr: 1%). */
export const SWITCH_HYSTERESIS = 0.01;
/** Periodic re-STUN: every 20–26 s, randomized (magicsock.go ReSTUN schedule). */
export const RESTUN_MIN = 20_000;
export const RESTUN_JITTER = 6_000;
/** A STUN round waits this long for answers (netcheck's per-probe budget). */
export const STUN_ROUND_TIMEOUT = 3_000;
/** Region latency history window for choosing home (netcheck.go: 5 min). */
export const HOME_HISTORY = 5 * 60_000;
/** Keep the old home DERP when the best is less than this much faster (netcheck.go: 10 ms)... */
export const HOME_KEEP_GAP = 10;
/** ...or when the best is still more than this fraction of the old home's latency (⅔). */
export const HOME_KEEP_RATIO = 2 / 3;
/** A non-home DERP connection unused this long is closed (derpInactiveCleanupTime). */
export const DERP_INACTIVE_CLEANUP = 60_000;
/** DERP reconnect backoff: first wait and cap. */
export const DERP_BACKOFF_MIN = 250;
export const DERP_BACKOFF_MAX = 30_000;
/** Packets queued per DERP region while its connection is being made; more are dropped. */
export const DERP_CONNECT_QUEUE = 32;
/** Candidate addresses kept per peer (netmap + CallMeMaybe + learned); more are dropped and counted. */
export const MAX_CANDIDATES = 64;
/** Outstanding pings per peer; more are not sent. */
export const MAX_PINGS_PER_PEER = 64;
/**
 * Disco packets naming a peer's key whose box fails to open cost an X25519 each
 * (~0.1 ms): after this many per second per peer the rest are dropped unopened
 * (`dropDiscoRateLimited`) until the budget refills. Lattice's own guard (Tailscale
 * caches the shared key instead; libsodium via sodium-native has no crypto_box_beforenm).
 */
export const BAD_DISCO_PER_SECOND = 50;
/** Default STUN port of a DERP node (tailcfg.DERPNode.STUNPort 0). */
export const DEFAULT_STUN_PORT = 3478;
/** The DERP pseudo-address: 127.3.3.40:<regionID> (magicsock's derpMagicIPAddr). */
export const DERP_MAGIC_IP = Uint8Array.of(127, 3, 3, 40);
