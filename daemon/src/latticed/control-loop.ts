/**
 * The control loop (Tailscale's controlclient.Auto, cut small): one Noise connection to
 * lattice-control (packages/control-client), registration on demand, and a long-polled
 * map stream (`Stream: true, KeepAlive: true`) that is reopened forever with exponential
 * backoff (1 s doubling to 30 s, ×[0.5, 1) jitter; reset once a stream delivered a
 * message). A stream silent for {@link STREAM_IDLE_MS} (the server sends keep-alives every
 * 60 s) is treated as dead. Refusals (HTTP 401/403/404 on the map) go to `onRefused`,
 * which says whether to keep retrying (awaiting approval) or stop (expired, deleted).
 *
 * Endpoint/home DERP/Hostinfo changes: {@link ControlLoop.sendUpdate} posts a
 * non-streaming MapRequest with `OmitPeers: true` on the same connection (Tailscale's
 * "lite" map update), so the stream is not reopened.
 */
import { ControlClient, ControlError, noiseKeyPair, type MapStream } from "@lattice/control-client";
import type { MapRequest, MapResponse, RegisterRequest, RegisterResponse } from "@lattice/types";

/** A control connection as the loop needs it (ControlClient satisfies it). */
export interface ControlConn {
  register(req: RegisterRequest): Promise<RegisterResponse>;
  map(req: MapRequest): MapStream;
  /** GET on the channel (SSH check mode); optional for test doubles. */
  get?(path: string, signal?: AbortSignal): Promise<{ status: number; body: string }>;
  readonly closed: boolean;
  close(): void;
}

/** Dials lattice-control at `serverUrl` with the machine private key. */
export type ControlDialer = (serverUrl: string, machinePrivate: Uint8Array) => Promise<ControlConn>;

/** The production dialer (packages/control-client). */
export const dialControl: ControlDialer = (serverUrl, machinePrivate) => ControlClient.connect({ serverUrl, machineKey: noiseKeyPair(machinePrivate), timeoutMs: 10_000 });

/** A map stream silent this long is closed and reopened (2× the server's keep-alive). */
export const STREAM_IDLE_MS = 130_000;
/** Backoff bounds. */
export const BACKOFF_MIN_MS = 1_000;
export const BACKOFF_MAX_MS = 30_000;

/** The backoff before retry number `attempt` (0-based), jittered by `rnd` in [0,1). */
export function backoffMs(attempt: number, rnd: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.5 + rnd * 0.5));
}

/** What the loop does after a refusal. */
export type RefusalAction = "retry" | "stop";

/** Dependencies of {@link ControlLoop}. */
export interface ControlLoopDeps {
  dial: ControlDialer;
  /** Random number in [0,1) for jitter. */
  rnd: () => number;
  /** The current map request (NodeKey, DiscoKey, Hostinfo, Endpoints); Stream etc. are set by the loop. */
  mapRequest: () => MapRequest;
  /** A map message; `full` for the first one of a stream. */
  onMap: (resp: MapResponse, full: boolean) => void;
  /** The stream ended or could not be opened (network, server down). */
  onDisconnected: (err: Error) => void;
  /** The server refused the map (401/403/404): retry (with backoff) or stop. */
  onRefused: (err: ControlError) => RefusalAction;
  log: { debug(o: object, m?: string): void; info(o: object, m?: string): void; warn(o: object, m?: string): void };
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (h: unknown) => void;
}

/** One control server session (see the file comment). */
export class ControlLoop {
  #conn: ControlConn | null = null;
  #dialing: Promise<ControlConn> | null = null;
  #running = false;
  #stream: MapStream | null = null;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  /** Bumped on each stop so a stale loop never touches state again. */
  #generation = 0;

  constructor(
    private readonly d: ControlLoopDeps,
    /** lattice-control's URL. */
    readonly serverUrl: string,
    private readonly machinePrivate: Uint8Array,
  ) {}

  /** Whether the map loop runs. */
  get running(): boolean {
    return this.#running;
  }

  async #connection(): Promise<ControlConn> {
    if (this.#conn && !this.#conn.closed) return this.#conn;
    this.#dialing ??= this.d.dial(this.serverUrl, this.machinePrivate).finally(() => (this.#dialing = null));
    const c = await this.#dialing;
    this.#conn = c;
    return c;
  }

  /** POST /machine/register on the (possibly new) connection. Throws ControlError. */
  async register(req: RegisterRequest): Promise<RegisterResponse> {
    const c = await this.#connection();
    try {
      return await c.register(req);
    } catch (e) {
      // A dead connection: drop it so the next call dials again.
      if (e instanceof ControlError && e.status === 0) this.#dropConn();
      throw e;
    }
  }

  /** GET `path` on the (possibly new) connection (SSH check mode). Throws ControlError. */
  async get(path: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
    const c = await this.#connection();
    if (!c.get) throw new ControlError(0, "unsupported", "this control connection cannot GET");
    return c.get(path, signal);
  }

  /** Sends the current endpoints/Hostinfo without reopening the stream (no-op when not connected). */
  sendUpdate(): void {
    if (!this.#running || !this.#conn || this.#conn.closed) return;
    const req: MapRequest = { ...this.d.mapRequest(), Stream: false, OmitPeers: true };
    const s = this.#conn.map(req);
    void (async () => {
      try {
        for await (const _ of s) break;
      } catch (e) {
        this.d.log.debug({ err: (e as Error).message }, "endpoint update failed (the next stream carries it)");
      } finally {
        s.close();
      }
    })();
  }

  /** Starts the map loop (idempotent). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const gen = ++this.#generation;
    this.#loop = this.#run(gen);
  }

  /** Stops the loop and closes the connection. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#generation++;
    this.#stream?.close();
    this.#wake?.();
    const l = this.#loop;
    this.#loop = null;
    this.#dropConn();
    await l;
  }

  /** Reopens the stream now (e.g. new node key), skipping any backoff wait. */
  restartStream(): void {
    this.#stream?.close();
    this.#wake?.();
  }

  #dropConn(): void {
    const c = this.#conn;
    this.#conn = null;
    try {
      c?.close();
    } catch {
      /* already closed */
    }
  }

  #sleep(ms: number): Promise<void> {
    const st = this.d.setTimeout ?? ((f, m) => setTimeout(f, m));
    const ct = this.d.clearTimeout ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    return new Promise((resolve) => {
      const h = st(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        ct(h);
        this.#wake = null;
        resolve();
      };
    });
  }

  async #run(gen: number): Promise<void> {
    let attempt = 0;
    const live = () => this.#running && gen === this.#generation;
    while (live()) {
      let got = false;
      let err: Error | null = null;
      try {
        const c = await this.#connection();
        if (!live()) break;
        const stream = c.map({ ...this.d.mapRequest(), Stream: true, KeepAlive: true });
        this.#stream = stream;
        const st = this.d.setTimeout ?? ((f, m) => setTimeout(f, m));
        const ct = this.d.clearTimeout ?? ((h) => clearTimeout(h as NodeJS.Timeout));
        let idle: unknown = st(() => stream.close(), STREAM_IDLE_MS);
        try {
          for await (const msg of stream) {
            if (!live()) break;
            ct(idle);
            idle = st(() => stream.close(), STREAM_IDLE_MS);
            const full = !got;
            got = true;
            attempt = 0;
            try {
              this.d.onMap(msg, full);
            } catch (e) {
              this.d.log.warn({ err: (e as Error).stack }, "applying a map response failed");
            }
          }
        } finally {
          ct(idle);
          this.#stream = null;
        }
        err = new ControlError(0, "stream_ended", "map stream ended");
      } catch (e) {
        err = e as Error;
      }
      if (!live()) break;
      if (err instanceof ControlError && [401, 403, 404].includes(err.status)) {
        if (this.d.onRefused(err) === "stop") {
          this.#running = false;
          break;
        }
      } else {
        if (!(err instanceof ControlError) || err.status === 0) this.#dropConn();
        this.d.onDisconnected(err);
      }
      const wait = backoffMs(attempt++, this.d.rnd());
      this.d.log.debug({ waitMs: wait, err: err.message }, "map stream down; retrying");
      await this.#sleep(wait);
    }
  }
}
