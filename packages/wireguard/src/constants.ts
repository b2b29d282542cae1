/**
 * Protocol constants, named after the WireGuard whitepaper (§6.1 "Timers and limits")
 * and wireguard-go's device/constants.go. Times are milliseconds.
 */

/** After this many messages on a key the initiator starts a new handshake. */
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/** A key is never used for more than this many messages (2^64 − 2^13 − 1). */
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
/** Counters are tracked as JS numbers: anything at or above 2^53 is treated as exhausted. */
export const MAX_SAFE_COUNTER = Number.MAX_SAFE_INTEGER;
/** The initiator rekeys a session older than this when sending. */
export const REKEY_AFTER_TIME = 120_000;
/** A session older than this is never used to send or receive. */
export const REJECT_AFTER_TIME = 180_000;
/** Handshake retries stop after this long. */
export const REKEY_ATTEMPT_TIME = 90_000;
/** Retransmit an unanswered initiation after this long (+ jitter). */
export const REKEY_TIMEOUT = 5_000;
/** Maximum random jitter added to REKEY_TIMEOUT. */
export const REKEY_TIMEOUT_JITTER_MAX = 334;
/** Send a keepalive this long after receiving data when we had nothing to send. */
export const KEEPALIVE_TIMEOUT = 10_000;
/** A cookie, and the cookie secret, live this long. */
export const COOKIE_REFRESH_TIME = 120_000;
/** Initiations from one peer closer together than this are rejected (flood check). */
export const HANDSHAKE_INITIATION_RATE = 20;
/** Retransmissions before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT. */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;
/** All key material is zeroed this long after the last session was derived. */
export const ZERO_KEY_MATERIAL_TIME = REJECT_AFTER_TIME * 3;
/** The initiator on receive starts one handshake once a key is older than this (165 s). */
export const REKEY_ON_RECEIVE_TIME = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;

/** Packets staged per peer while waiting for a session (wireguard-go QueueStagedSize). */
export const QUEUE_STAGED_SIZE = 128;
/** wireguard-go's handshake queue size; under load when ≥ 1/8 of it is used. */
export const QUEUE_HANDSHAKE_SIZE = 1024;
/** How long the device stays "under load" after the condition was last seen. */
export const UNDER_LOAD_AFTER_TIME = 1_000;

/** Default inner MTU (wireguard-go DefaultMTU). */
export const DEFAULT_MTU = 1420;
/** Transport plaintext is padded to a multiple of this. */
export const PADDING_MULTIPLE = 16;

/** Ratelimiter: handshakes per second per source IP, and burst (wireguard-go ratelimiter). */
export const RATELIMIT_PACKETS_PER_SECOND = 20;
/** Ratelimiter burst. */
export const RATELIMIT_PACKETS_BURSTABLE = 5;

/** Noise protocol name of WireGuard. */
export const NOISE_CONSTRUCTION = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/** WireGuard's Noise prologue ("identifier" in the whitepaper). */
export const WG_IDENTIFIER = "WireGuard v1 zx2c4 Jason@zx2c4.com";
/** Label hashed with a static key to get the mac1 key. */
export const WG_LABEL_MAC1 = "mac1----";
/** Label hashed with a static key to get the cookie encryption key. */
export const WG_LABEL_COOKIE = "cookie--";
