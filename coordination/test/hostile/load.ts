/**
 * Sustained hostile load for soak tests: keeps re-opening the hostile clients of
 * ./clients.ts against a server until stopped, and samples the server's fds and RSS.
 * Combine with other loads (e.g. registration floods) by running them side by side.
 */
import { openUnknownUpgrades, procStats, slowHeaders, stalledH2Streams, type Hostile } from "./clients.js";

/** Knobs of {@link startHostileLoad} (per wave; a wave starts every `waveMs`). */
export interface HostileLoadOptions {
  /** Unknown-upgrade connections per wave (default 50). */
  upgrades?: number;
  /** Control channels with stalled streams per wave (default 4). */
  stalledConns?: number;
  /** Stalled streams per channel (default 16). */
  stalledStreams?: number;
  /** Slowloris connections per wave (default 10). */
  slowloris?: number;
  /** Time between waves, ms (default 1000). */
  waveMs?: number;
  /** Client-side handles older than this are closed by us, ms (default 10 000). */
  holdMs?: number;
}

/** A running hostile load. */
export interface HostileLoad {
  /** Waves started, and client errors (e.g. refused dials) seen. */
  readonly waves: number;
  readonly errors: number;
  /** Stops new waves and closes every client-side handle. */
  stop(): Promise<void>;
}

/** Starts waves of unknown upgrades, stalled HTTP/2 streams and slowloris connections. */
export function startHostileLoad(serverUrl: string, o: HostileLoadOptions = {}): HostileLoad {
  const held: Array<{ h: Hostile; at: number }> = [];
  let waves = 0;
  let errors = 0;
  let stopped = false;
  const pending = new Set<Promise<unknown>>();
  const wave = () => {
    if (stopped) return;
    waves++;
    const now = Date.now();
    for (const x of held.splice(0)) {
      if (now - x.at > (o.holdMs ?? 10_000)) x.h.close();
      else held.push(x);
    }
    held.push({ h: openUnknownUpgrades(serverUrl, o.upgrades ?? 50), at: now });
    held.push({ h: slowHeaders(serverUrl, o.slowloris ?? 10, 200), at: now });
    const p = stalledH2Streams(serverUrl, o.stalledConns ?? 4, o.stalledStreams ?? 16).then(
      (h) => (stopped ? h.close() : held.push({ h, at: now })),
      () => errors++,
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const timer = setInterval(wave, o.waveMs ?? 1000);
  wave();
  return {
    get waves() {
      return waves;
    },
    get errors() {
      return errors;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.allSettled([...pending]);
      for (const x of held.splice(0)) x.h.close();
    },
  };
}

/** Samples fds and RSS of `pid` every `everyMs` until stopped; `samples` holds them. */
export function sampleProc(pid: number, everyMs = 5000): { samples: Array<{ t: number; fds: number; rssKiB: number }>; stop(): void } {
  const samples: Array<{ t: number; fds: number; rssKiB: number }> = [];
  const start = Date.now();
  const take = () => void procStats(pid).then((s) => samples.push({ t: Date.now() - start, ...s }), () => {});
  take();
  const timer = setInterval(take, everyMs);
  return { samples, stop: () => clearInterval(timer) };
}
