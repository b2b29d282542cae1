/**
 * The whitepaper's per-peer timers (§6), sans-IO: each timer is a deadline (ms, monotonic)
 * or undefined, and the hooks are named after the events of wireguard-go's timers.go.
 * The device polls {@link PeerTimers.takeExpired} from `tick()` and performs the actions.
 */
import { KEEPALIVE_TIMEOUT, REKEY_TIMEOUT, ZERO_KEY_MATERIAL_TIME } from "./constants.js";

/** Timer names, as in wireguard-go. */
export type TimerName = "retransmitHandshake" | "sendKeepalive" | "newHandshake" | "zeroKeyMaterial" | "persistentKeepalive";

const NAMES: readonly TimerName[] = ["retransmitHandshake", "sendKeepalive", "newHandshake", "zeroKeyMaterial", "persistentKeepalive"];

/** The timers of one peer. */
export class PeerTimers {
  /** Deadline per timer (undefined = not pending). */
  readonly deadlines: Record<TimerName, number | undefined> = {
    retransmitHandshake: undefined, sendKeepalive: undefined, newHandshake: undefined,
    zeroKeyMaterial: undefined, persistentKeepalive: undefined,
  };
  /** Retransmissions of the current initiation so far. */
  handshakeAttempts = 0;
  /** Data arrived while a keepalive was already pending: send another after it. */
  needAnotherKeepalive = false;
  /** The initiator already started its last-minute rekey on receive. */
  sentLastMinuteHandshake = false;
  /** Persistent keepalive interval in ms (0 = off). */
  persistentKeepaliveInterval = 0;

  /**
   * `jitter()` returns 0..333 ms of random jitter; `changed()` is called whenever a
   * deadline actually changes (the device then re-files the peer in its deadline heap).
   */
  constructor(
    private readonly jitter: () => number,
    private readonly changed: () => void = () => {},
  ) {}

  /** True when the timer is pending. */
  pending(t: TimerName): boolean {
    return this.deadlines[t] !== undefined;
  }

  /** Arms timer `t` to fire at `at`. */
  mod(t: TimerName, at: number): void {
    if (this.deadlines[t] === at) return;
    this.deadlines[t] = at;
    this.changed();
  }

  /** Cancels timer `t`. */
  del(t: TimerName): void {
    if (this.deadlines[t] === undefined) return;
    this.deadlines[t] = undefined;
    this.changed();
  }

  /** Cancels every timer and resets the counters. */
  stopAll(): void {
    for (const n of NAMES) this.deadlines[n] = undefined;
    this.changed();
    this.handshakeAttempts = 0;
    this.needAnotherKeepalive = false;
    this.sentLastMinuteHandshake = false;
  }

  /** Earliest pending deadline. */
  next(): number | undefined {
    let m: number | undefined;
    for (const n of NAMES) {
      const d = this.deadlines[n];
      if (d !== undefined && (m === undefined || d < m)) m = d;
    }
    return m;
  }

  /** Removes and returns the timers due at `now`, earliest first. */
  takeExpired(now: number): TimerName[] {
    const due: TimerName[] = [];
    for (const n of NAMES) {
      const d = this.deadlines[n];
      if (d !== undefined && d <= now) due.push(n);
    }
    due.sort((a, b) => (this.deadlines[a] as number) - (this.deadlines[b] as number));
    for (const n of due) this.deadlines[n] = undefined;
    if (due.length > 0) this.changed();
    return due;
  }

  /** A transport message carrying data was sent: expect an answer within 15 s or rekey. */
  dataSent(now: number): void {
    if (!this.pending("newHandshake")) this.mod("newHandshake", now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + this.jitter());
  }

  /** A transport message carrying data was received: answer with a keepalive in 10 s unless we send first. */
  dataReceived(now: number): void {
    if (!this.pending("sendKeepalive")) this.mod("sendKeepalive", now + KEEPALIVE_TIMEOUT);
    else this.needAnotherKeepalive = true;
  }

  /** Any authenticated packet (handshake or transport) was sent. */
  anyAuthenticatedPacketSent(): void {
    this.del("sendKeepalive");
  }

  /** Any authenticated packet was received. */
  anyAuthenticatedPacketReceived(): void {
    this.del("newHandshake");
  }

  /** An initiation was sent: retransmit after REKEY_TIMEOUT + jitter. */
  handshakeInitiated(now: number): void {
    this.mod("retransmitHandshake", now + REKEY_TIMEOUT + this.jitter());
  }

  /** A handshake completed (initiator: response consumed; responder: first data on the session). */
  handshakeComplete(): void {
    this.del("retransmitHandshake");
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
  }

  /** A session was derived: zero all keys if nothing new happens in 3 × REJECT_AFTER_TIME. */
  sessionDerived(now: number): void {
    this.mod("zeroKeyMaterial", now + ZERO_KEY_MATERIAL_TIME);
  }

  /** Any authenticated packet was sent or received: re-arm the persistent keepalive. */
  anyAuthenticatedPacketTraversal(now: number): void {
    if (this.persistentKeepaliveInterval > 0) this.mod("persistentKeepalive", now + this.persistentKeepaliveInterval);
  }
}
