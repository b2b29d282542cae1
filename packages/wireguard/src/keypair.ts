/**
 * Session keypairs and the current/previous/next rotation (whitepaper §5.4.6, wireguard-go
 * device/keypair.go). The responder keeps a fresh session in `next` until the initiator
 * proves it has the keys (key confirmation: the first transport message on it).
 */
import { ReplayFilter } from "./replay.js";

/** One session: send/receive keys, indices, send counter and replay window. */
export class Keypair {
  /** Next send counter. */
  sendNonce = 0;
  /** Replay window for received counters. */
  readonly replay = new ReplayFilter();

  constructor(
    /** Key we encrypt with (zeroed when the session is dropped). */
    public sendKey: Uint8Array,
    /** Key we decrypt with. */
    public receiveKey: Uint8Array,
    /** True when we sent the initiation of the handshake that derived this session. */
    readonly isInitiator: boolean,
    /** Monotonic creation time (ms). */
    readonly created: number,
    /** Our receiver index for this session. */
    readonly localIndex: number,
    /** The peer's receiver index (goes into our transport messages). */
    readonly remoteIndex: number,
  ) {}

  /** Zeroes the keys (the session can no longer be used). */
  zero(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
    this.sendNonce = Number.MAX_SAFE_INTEGER;
  }
}

/** The three session slots of a peer. */
export class Keypairs {
  /** The session we send with. */
  current: Keypair | null = null;
  /** The session before it, still accepted for receiving. */
  previous: Keypair | null = null;
  /** Responder only: a session not yet confirmed by the initiator. */
  next: Keypair | null = null;

  /**
   * Installs a freshly derived session. Returns the keypairs that dropped out (the caller
   * frees their indices).
   */
  install(kp: Keypair): Keypair[] {
    const dropped: Keypair[] = [];
    if (kp.isInitiator) {
      if (this.next !== null) {
        if (this.previous) dropped.push(this.previous);
        if (this.current) dropped.push(this.current);
        this.previous = this.next;
        this.next = null;
      } else {
        if (this.previous) dropped.push(this.previous);
        this.previous = this.current;
      }
      this.current = kp;
    } else {
      if (this.next) dropped.push(this.next);
      if (this.previous) dropped.push(this.previous);
      this.next = kp;
      this.previous = null;
    }
    for (const d of dropped) d.zero();
    return dropped;
  }

  /**
   * Called after a transport message authenticated under `kp`. When `kp` is `next`, it is
   * promoted to current (returns the dropped keypairs and `promoted = true`).
   */
  receivedWith(kp: Keypair): { promoted: boolean; dropped: Keypair[] } {
    if (kp !== this.next) return { promoted: false, dropped: [] };
    const dropped: Keypair[] = [];
    if (this.previous) dropped.push(this.previous);
    this.previous = this.current;
    this.current = kp;
    this.next = null;
    for (const d of dropped) d.zero();
    return { promoted: true, dropped };
  }

  /** Drops every session; returns them. */
  clear(): Keypair[] {
    const all = [this.previous, this.current, this.next].filter((k): k is Keypair => k !== null);
    this.previous = this.current = this.next = null;
    for (const k of all) k.zero();
    return all;
  }
}
