/**
 * Check mode (HoldAndDelegate), node half: Tailscale's ssh/tailssh/tailssh.go
 * resolveNextAction loop. The session is held in the auth phase; the delegate URL is
 * fetched (a long poll over the Noise channel, by the backend) and each returned action's
 * Message is shown as an auth banner; a returned HoldAndDelegate is followed (expanded
 * again); Accept or Reject ends the loop. Failed fetches are retried with backoff (1 s
 * doubling, at most 10 s); the whole hold ends after `timeoutMs` (default 30 min).
 */
import type { SSHAction } from "@lattice/types";

/** What the check loop needs from its environment. */
export interface CheckDeps {
  /** GET the URL, resolving the SSHAction; rejects on transport/HTTP failure. */
  fetchCheck(url: string, signal: AbortSignal): Promise<SSHAction>;
  /** Shows a message to the user (an auth banner). */
  banner(text: string): void;
  /** Expands $VARS in a delegate URL. */
  expand(url: string): string;
  /** Sleeps `ms` (rejects/returns early when `signal` aborts). */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** The end of a check. */
export type CheckResult = { accept: true; action: SSHAction } | { accept: false; message: string };

/** Options of runCheck. */
export interface CheckOptions {
  /** Overall hold limit in ms (default 30 min). */
  timeoutMs?: number;
  /** Aborts the hold (the client went away). */
  signal: AbortSignal;
  /**
   * Cap on followed HoldAndDelegate hops (default 128) against a looping server.
   * lattice-control answers each wait poll within 25 s, handing back the same wait URL
   * when nobody decided yet, so a 30-minute hold takes up to ~72 hops.
   */
  maxHops?: number;
}

/** Default overall hold: Tailscale's 30 minutes. */
export const CHECK_TIMEOUT_MS = 30 * 60_000;

/** Runs the check loop starting at `firstUrl` (unexpanded). Never throws. */
export async function runCheck(firstUrl: string, deps: CheckDeps, opts: CheckOptions): Promise<CheckResult> {
  const timeoutMs = opts.timeoutMs ?? CHECK_TIMEOUT_MS;
  const ctl = new AbortController();
  const onAbort = (): void => ctl.abort();
  opts.signal.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  timer.unref?.();
  const signal = ctl.signal;
  let url = deps.expand(firstUrl);
  let hops = 0;
  let backoff = 1000;
  try {
    for (;;) {
      if (signal.aborted) break;
      let action: SSHAction;
      try {
        // Raced against the signal: a backend that ignores the abort cannot stall the hold.
        action = await untilAborted(deps.fetchCheck(url, signal), signal);
      } catch {
        if (signal.aborted) break;
        await deps.sleep(backoff, signal).catch(() => undefined);
        backoff = Math.min(backoff * 2, 10_000);
        continue;
      }
      backoff = 1000;
      if (action.message) deps.banner(action.message);
      if (action.reject) return { accept: false, message: action.message || "access denied by the check" };
      if (action.accept) return { accept: true, action };
      if (action.holdAndDelegate) {
        if (++hops > (opts.maxHops ?? 128)) return { accept: false, message: "check did not reach a decision" };
        url = deps.expand(action.holdAndDelegate);
        continue;
      }
      return { accept: false, message: "check returned no decision" };
    }
    if (opts.signal.aborted) return { accept: false, message: "connection closed during check" };
    return { accept: false, message: `check not approved within ${Math.round(timeoutMs / 1000)} s` };
  } finally {
    clearTimeout(timer);
    opts.signal.removeEventListener("abort", onAbort);
  }
}

/** A sleep that ends early (resolving) when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new Error("aborted"));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
