/**
 * A peer's state inside the device: identity, PSK, endpoint, handshake in progress,
 * session keypairs, timers, cookie state, staged packets and counters. Behaviour lives
 * in device.ts; this file is the data and its small invariants.
 */
import { isAllZero, x25519, LowOrderPointError } from "@lattice/crypto";
import type { Endpoint } from "./api.js";
import { CookieGenerator } from "./cookie.js";
import { Keypairs } from "./keypair.js";
import type { NoiseKeyPair, SymmetricState } from "./noise.js";
import { PeerTimers } from "./timers.js";

/** Handshake states (wireguard-go handshakeState). */
export type HandshakeState = "zeroed" | "initiationCreated" | "initiationConsumed" | "responseCreated" | "responseConsumed";

/** The handshake in progress with a peer. */
export class Handshake {
  /** Where the handshake stands. */
  state: HandshakeState = "zeroed";
  /** Noise symmetric state (chaining key + hash). */
  sym: SymmetricState | null = null;
  /** Our ephemeral key pair. */
  ephemeral: NoiseKeyPair | null = null;
  /** The peer's ephemeral public key. */
  remoteEphemeral: Uint8Array | null = null;
  /** Our index for this handshake (0 = none). */
  localIndex = 0;
  /** The peer's index. */
  remoteIndex = 0;
  /** Greatest TAI64N timestamp accepted from the peer. */
  lastTimestamp: Uint8Array = new Uint8Array(12);
  /** Monotonic time of the last consumed initiation. */
  lastInitiationConsumption = -Infinity;
  /** Monotonic time we last sent an initiation. */
  lastSentHandshake = -Infinity;

  /**
   * Forgets the handshake in progress (keeps the replay/flood markers), zeroing its
   * secrets: our ephemeral private key and the chaining key, hash and cipher key
   * (wireguard-go Handshake.Clear; whitepaper §7.5 "zero key material").
   */
  clear(): void {
    this.state = "zeroed";
    this.sym?.zero();
    this.sym = null;
    this.ephemeral?.privateKey.fill(0);
    this.ephemeral = null;
    this.remoteEphemeral = null;
    this.localIndex = 0;
    this.remoteIndex = 0;
  }
}

/** One configured peer. */
export class Peer {
  /** Preshared key (32 zero bytes when unset). */
  presharedKey: Uint8Array = new Uint8Array(32);
  /** Where to send, and from which local address (updated by roaming, with the source). */
  endpoint: Endpoint | null = null;
  /** DH(our static, their static), or all zero when invalid (low-order key or no private key). */
  precomputedStaticStatic: Uint8Array = new Uint8Array(32);
  /** Handshake in progress. */
  readonly handshake = new Handshake();
  /** Sessions. */
  readonly keypairs = new Keypairs();
  /** Timers. */
  readonly timers: PeerTimers;
  /** mac1/mac2 for our handshake messages to this peer. */
  readonly cookies: CookieGenerator;
  /** Packets waiting for a session (inner IP packets; empty = keepalive). */
  staged: Uint8Array[] = [];
  /** UDP payload bytes received from / sent to this peer. */
  rxBytes = 0;
  /** See rxBytes. */
  txBytes = 0;
  /** Wall-clock ms of the last completed handshake (0 = never). */
  lastHandshakeWallMs = 0;
  /** Position in the device's deadline heap (−1 = none) and the deadline filed there. */
  heapIndex = -1;
  heapKey = Infinity;
  /** The timers changed since the device last filed this peer's deadline. */
  timersDirty = false;

  constructor(
    /** The peer's static public key. */
    readonly publicKey: Uint8Array,
    /** Hex of the public key (map key). */
    readonly id: string,
    jitter: () => number,
    /** Called when the peer's timers change (see {@link PeerTimers}). */
    timersChanged: (p: Peer) => void = () => {},
  ) {
    this.timers = new PeerTimers(jitter, () => timersChanged(this));
    this.cookies = new CookieGenerator(publicKey);
  }

  /** Recomputes DH(our static, their static); zero when there is no key or theirs is low-order. */
  precompute(ourPrivate: Uint8Array | null): void {
    this.precomputedStaticStatic.fill(0);
    if (ourPrivate === null) {
      this.precomputedStaticStatic = new Uint8Array(32);
      return;
    }
    try {
      this.precomputedStaticStatic = x25519(ourPrivate, this.publicKey);
    } catch (e) {
      if (!(e instanceof LowOrderPointError)) throw e;
      this.precomputedStaticStatic = new Uint8Array(32);
    }
  }

  /** True when a handshake with this peer is possible (static-static DH not zero). */
  get canHandshake(): boolean {
    return !isAllZero(this.precomputedStaticStatic);
  }
}
