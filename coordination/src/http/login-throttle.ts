/**
 * Throttling of failed password logins (each attempt costs an scrypt evaluation), keyed
 * so that one person's typos or one attacker's guesses do not lock out everyone behind
 * the same NAT:
 *
 * - per (account, source): {@link LoginThrottleOptions.freeFailures} failures are free;
 *   after that the pair waits `baseDelayMs`, doubling with every further failure up to
 *   `maxDelayMs` (exponential backoff, as OpenSSH's PerSourcePenalties do). A success
 *   clears the pair; a pair forgotten after `forgetMs` without failures.
 * - per source, all accounts together (gentler): at most `perSourceFailures` failures
 *   within `perSourceWindowMs`; then the source waits until the window has passed.
 *
 * A source is an IPv4 address or an IPv6 /64 (see {@link sourceKey}). Accounts are
 * compared case-insensitively. Memory is bounded: beyond `maxEntries` tracked keys the
 * least recently failed are forgotten. Pure logic with an injected clock.
 */
import { sourceKey } from "./limits.js";

/** Tuning of {@link LoginThrottle}; every field has a default. */
export interface LoginThrottleOptions {
  /** Failures per (account, source) before backoff starts (default 10). */
  freeFailures: number;
  /** First backoff delay, ms (default 60 s). */
  baseDelayMs: number;
  /** Longest backoff delay, ms (default 30 min). */
  maxDelayMs: number;
  /** A pair without failures for this long starts afresh, ms (default 1 h). */
  forgetMs: number;
  /** Failures per source, all accounts, within the window (default 100). */
  perSourceFailures: number;
  /** Window of the per-source count, ms (default 15 min). */
  perSourceWindowMs: number;
  /** Tracked keys kept at most (default 10 000 of each kind). */
  maxEntries: number;
}

/** Defaults of {@link LoginThrottleOptions}. */
export const DEFAULT_LOGIN_THROTTLE: Readonly<LoginThrottleOptions> = Object.freeze({
  freeFailures: 10,
  baseDelayMs: 60_000,
  maxDelayMs: 30 * 60_000,
  forgetMs: 60 * 60_000,
  perSourceFailures: 100,
  perSourceWindowMs: 15 * 60_000,
  maxEntries: 10_000,
});

/** The outcome of {@link LoginThrottle.check}. */
export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterMs: number; scope: "account" | "source" };

interface PairState {
  failures: number;
  last: number;
}
interface SourceState {
  failures: number;
  since: number;
}

/** Failed-login bookkeeping; see the module comment. */
export class LoginThrottle {
  private readonly o: LoginThrottleOptions;
  private readonly pairs = new Map<string, PairState>();
  private readonly sources = new Map<string, SourceState>();

  constructor(
    private readonly now: () => number,
    opts: Partial<LoginThrottleOptions> = {},
  ) {
    this.o = { ...DEFAULT_LOGIN_THROTTLE, ...opts };
  }

  private pairKey(account: string, address: string | undefined): string {
    return `${sourceKey(address)}\u0000${account.trim().toLowerCase()}`;
  }

  private delayAfter(failures: number): number {
    const over = failures - this.o.freeFailures;
    if (over < 0) return 0;
    return Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(over, 30));
  }

  /** Whether `account` may try a password from `address` now. */
  check(account: string, address: string | undefined): ThrottleVerdict {
    const t = this.now();
    const src = this.sources.get(sourceKey(address));
    if (src && t - src.since < this.o.perSourceWindowMs && src.failures >= this.o.perSourceFailures) {
      return { allowed: false, retryAfterMs: src.since + this.o.perSourceWindowMs - t, scope: "source" };
    }
    const p = this.pairs.get(this.pairKey(account, address));
    if (p && t - p.last < this.o.forgetMs) {
      const until = p.last + this.delayAfter(p.failures);
      if (p.failures >= this.o.freeFailures && t < until) return { allowed: false, retryAfterMs: until - t, scope: "account" };
    }
    return { allowed: true };
  }

  /** Records a failed attempt. */
  fail(account: string, address: string | undefined): void {
    const t = this.now();
    const key = this.pairKey(account, address);
    const p = this.pairs.get(key);
    const failures = p && t - p.last < this.o.forgetMs ? p.failures + 1 : 1;
    this.pairs.delete(key);
    this.pairs.set(key, { failures, last: t });
    const sk = sourceKey(address);
    const s = this.sources.get(sk);
    this.sources.delete(sk);
    if (s && t - s.since < this.o.perSourceWindowMs) this.sources.set(sk, { failures: s.failures + 1, since: s.since });
    else this.sources.set(sk, { failures: 1, since: t });
    this.trim(this.pairs);
    this.trim(this.sources);
  }

  /** Records a successful login: the pair starts afresh (the source count stays). */
  succeed(account: string, address: string | undefined): void {
    this.pairs.delete(this.pairKey(account, address));
  }

  private trim(m: Map<string, unknown>): void {
    // Maps iterate in insertion order and updates re-insert: the first keys are the stalest.
    while (m.size > this.o.maxEntries) m.delete(m.keys().next().value!);
  }
}
