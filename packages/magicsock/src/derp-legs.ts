/**
 * The DERP side of the edge: one connection per region in use (magicsock/derp.go). The
 * home region is always connected and told NotePreferred(true); other regions connect
 * on demand (a packet for a peer homed there) and close after
 * {@link DERP_INACTIVE_CLEANUP} without use. A lost connection is redialed with
 * exponential backoff (250 ms doubling to 30 s, ±25% jitter) while the region is home or
 * in use; a region's nodes are tried in turn. Packets for a region whose connection is
 * being made wait in a small queue (copied; overflow dropped and counted).
 */
import { connectDerp, type DerpMessage } from "@lattice/derp";
import type { DERPMap } from "@lattice/types";
import type { MagicLog } from "./api.js";
import { DERP_BACKOFF_MAX, DERP_BACKOFF_MIN, DERP_CONNECT_QUEUE, DERP_INACTIVE_CLEANUP } from "./constants.js";
import { derpDial, derpNodes } from "./derp-map.js";
import type { MagicStats } from "./stats.js";

/** A logged-in DERP connection as the legs use it (@lattice/derp's DerpConnection fits). */
export interface DerpLink {
  send(dst: Uint8Array, packet: Uint8Array): boolean;
  notePreferred(preferred: boolean): void;
  onMessage(h: (m: DerpMessage) => void): void;
  onClose(h: (err: Error | null) => void): void;
  close(): void;
}

/** Dials a relay (`url` ends in /derp) and logs in with `privateKey`. Default: connectDerp. */
export type DialDerp = (url: string, opts: { privateKey: Uint8Array; random: (n: number) => Uint8Array; insecureSkipVerify: boolean; timeoutMs: number }) => Promise<DerpLink>;

/** The default {@link DialDerp}: @lattice/derp's connectDerp. */
export const defaultDialDerp: DialDerp = (url, o) => connectDerp(url, o);

interface Leg {
  readonly region: number;
  link: DerpLink | null;
  connecting: boolean;
  queue: { dst: Uint8Array; data: Uint8Array }[];
  lastUse: number;
  failures: number;
  retry: ReturnType<typeof setTimeout> | null;
  closed: boolean;
}

export interface DerpLegsOptions {
  readonly dial: DialDerp;
  readonly random: (n: number) => Uint8Array;
  readonly now: () => number;
  readonly log: MagicLog;
  readonly stats: MagicStats;
  /** A packet from `src` (node key) arrived over `region`. */
  readonly onPacket: (region: number, src: Uint8Array, data: Uint8Array) => void;
}

export class DerpLegs {
  private readonly legs = new Map<number, Leg>();
  private map: DERPMap | null = null;
  private key: Uint8Array | null = null;
  private home = 0;

  constructor(private readonly o: DerpLegsOptions) {}

  /** New DERP map: legs of regions no longer in it close. */
  setMap(m: DERPMap): void {
    this.map = m;
    for (const leg of [...this.legs.values()]) if (m.Regions?.[String(leg.region)] === undefined) this.drop(leg);
    if (this.home !== 0) this.ensure(this.home);
  }

  /** New node key: every connection is redialed with it. */
  setKey(k: Uint8Array): void {
    this.key = k;
    const regions = [...this.legs.keys()];
    for (const leg of [...this.legs.values()]) this.drop(leg);
    for (const r of regions) if (r === this.home) this.ensure(r);
    if (this.home !== 0) this.ensure(this.home);
  }

  /** Home region changed: NotePreferred moves, the new home connects. */
  setHome(region: number): void {
    const old = this.legs.get(this.home);
    if (old?.link) old.link.notePreferred(false);
    this.home = region;
    if (region !== 0) {
      const leg = this.ensure(region);
      if (leg?.link) leg.link.notePreferred(true);
    }
  }

  /** The home region the legs keep connected (0 none). */
  get homeRegion(): number {
    return this.home;
  }

  /** Connected regions (tests, status). */
  connected(): number[] {
    return [...this.legs.values()].filter((l) => l.link !== null).map((l) => l.region).sort((a, b) => a - b);
  }

  /** True when the leg to `region` is logged in (not merely dialing or queueing). */
  isUp(region: number): boolean {
    return (this.legs.get(region)?.link ?? null) !== null;
  }

  /** Sends `data` to node `dst` via `region`; false when dropped (counted). Copies only when queueing. */
  send(region: number, dst: Uint8Array, data: Uint8Array): boolean {
    const leg = this.ensure(region);
    if (leg === null) {
      this.o.stats.dropSendNoPath++;
      return false;
    }
    leg.lastUse = this.o.now();
    if (leg.link !== null) {
      if (leg.link.send(dst, data)) return true;
      this.o.stats.dropDerpBackpressure++;
      return false;
    }
    if (leg.queue.length >= DERP_CONNECT_QUEUE) {
      this.o.stats.dropDerpQueueFull++;
      return false;
    }
    leg.queue.push({ dst, data: Uint8Array.from(data) });
    return true;
  }

  /** Closes non-home legs unused for {@link DERP_INACTIVE_CLEANUP}. */
  closeIdle(now: number): void {
    for (const leg of [...this.legs.values()]) if (leg.region !== this.home && now - leg.lastUse >= DERP_INACTIVE_CLEANUP) this.drop(leg);
  }

  /** Closes everything. */
  close(): void {
    for (const leg of [...this.legs.values()]) this.drop(leg);
    this.map = null;
  }

  private ensure(region: number): Leg | null {
    let leg = this.legs.get(region);
    if (leg !== undefined) return leg;
    if (this.map === null || this.key === null || derpNodes(this.map, region).length === 0) return null;
    leg = { region, link: null, connecting: false, queue: [], lastUse: this.o.now(), failures: 0, retry: null, closed: false };
    this.legs.set(region, leg);
    this.connect(leg);
    return leg;
  }

  private drop(leg: Leg): void {
    leg.closed = true;
    if (leg.retry !== null) clearTimeout(leg.retry);
    leg.link?.close();
    leg.link = null;
    leg.queue = [];
    if (this.legs.get(leg.region) === leg) this.legs.delete(leg.region);
  }

  private connect(leg: Leg): void {
    const nodes = this.map === null ? [] : derpNodes(this.map, leg.region);
    if (nodes.length === 0 || this.key === null) return this.drop(leg);
    const d = derpDial(nodes[leg.failures % nodes.length]!);
    leg.connecting = true;
    this.o.dial(d.url, { privateKey: this.key, random: this.o.random, insecureSkipVerify: d.insecureSkipVerify, timeoutMs: 10_000 }).then(
      (link) => {
        leg.connecting = false;
        if (leg.closed) return link.close();
        leg.link = link;
        leg.failures = 0;
        this.o.stats.derpConnects++;
        this.o.log.info({ region: leg.region, url: d.url }, "magicsock: DERP connected");
        link.onMessage((m) => {
          if (m.kind === "packet" && leg.link === link) this.o.onPacket(leg.region, m.source, m.data);
        });
        link.onClose((err) => {
          if (leg.link !== link) return;
          leg.link = null;
          this.o.stats.derpDisconnects++;
          if (!leg.closed) {
            this.o.log.warn({ region: leg.region, err: err?.message }, "magicsock: DERP connection lost");
            this.retryLater(leg);
          }
        });
        if (leg.region === this.home) link.notePreferred(true);
        const q = leg.queue;
        leg.queue = [];
        for (const p of q) if (!link.send(p.dst, p.data)) this.o.stats.dropDerpBackpressure++;
      },
      (err: Error) => {
        leg.connecting = false;
        this.o.stats.derpConnectFailures++;
        if (leg.closed) return;
        this.o.log.warn({ region: leg.region, url: d.url, err: err.message }, "magicsock: DERP connect failed");
        this.retryLater(leg);
      },
    );
  }

  private retryLater(leg: Leg): void {
    if (leg.region !== this.home && this.o.now() - leg.lastUse >= DERP_INACTIVE_CLEANUP) return this.drop(leg);
    leg.failures++;
    const base = Math.min(DERP_BACKOFF_MAX, DERP_BACKOFF_MIN * 2 ** Math.min(leg.failures - 1, 16));
    const r = this.o.random(1)[0]! / 255;
    const wait = base * (0.75 + r * 0.5);
    leg.retry = setTimeout(() => {
      leg.retry = null;
      if (!leg.closed) this.connect(leg);
    }, wait);
    leg.retry.unref?.();
  }
}
