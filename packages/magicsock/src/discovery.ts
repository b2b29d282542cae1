/**
 * Edge side of endpoint discovery: resolves the DERP map's STUN hosts, runs the sans-IO
 * {@link Netcheck} rounds on the shared UDP socket, turns their results into our endpoint
 * list (STUN-mapped + interface addresses, `onEndpoints` on change) and the home DERP
 * (`onHomeDerp` on change, the DERP legs follow), and answers `netcheck()`.
 */
import { lookup } from "node:dns/promises";
import { Endpoint } from "@lattice/netaddr";
import type { DERPMap } from "@lattice/types";
import type { Bind } from "@lattice/wireguard";
import type { MagicLog, NetcheckReport } from "./api.js";
import type { MagicCore } from "./core.js";
import type { DerpLegs } from "./derp-legs.js";
import { homeEligible, stunHosts } from "./derp-map.js";
import { localAddresses, ourEndpoints } from "./local-addrs.js";
import { Netcheck, type StunTarget } from "./netcheck.js";

export interface DiscoveryDeps {
  readonly now: () => number;
  readonly random: (n: number) => Uint8Array;
  readonly log: MagicLog;
  readonly core: MagicCore;
  readonly legs: DerpLegs;
  readonly localAddresses?: (() => string[]) | undefined;
  readonly resolveHost?: ((host: string) => Promise<string[]>) | undefined;
  readonly onEndpoints?: ((endpoints: string[]) => void) | undefined;
  readonly onHomeDerp?: ((regionId: number) => void) | undefined;
  /** The open UDP socket, or null. */
  readonly udp: () => Bind | null;
  /** Sends what the core queued (CallMeMaybes released by fresh endpoints). */
  readonly flush: () => void;
  /** Re-arms the edge timer. */
  readonly schedule: () => void;
}

export class Discovery {
  readonly nc: Netcheck;
  private map: DERPMap | null = null;
  private gen = 0;
  private eps: string[] = [];
  private waiters: ((r: NetcheckReport) => void)[] = [];
  private closed = false;

  constructor(private readonly d: DiscoveryDeps) {
    this.nc = new Netcheck(d.random, d.core.stats);
  }

  /** Our endpoints ("ip:port"). */
  get endpoints(): string[] {
    return this.eps;
  }

  /** New DERP map: STUN targets are resolved, then a round runs. */
  setDerpMap(m: DERPMap): void {
    this.map = m;
    const gen = ++this.gen;
    void this.resolveTargets(m).then((targets) => {
      if (gen !== this.gen || this.closed) return;
      this.nc.configure(homeEligible(m), targets);
      this.startStun();
    });
  }

  /** Starts a STUN round unless one runs, no map is set or the socket is not open. */
  startStun(): void {
    const udp = this.d.udp();
    if (udp === null || this.map === null || this.nc.running || this.closed) return;
    const pkts = this.nc.startRound(this.d.now());
    if (pkts.length > 0) udp.send(pkts.map((p) => p.data), pkts.map((p) => p.to), pkts.length);
    if (this.nc.finishIfDone(this.d.now())) this.roundDone();
    this.d.schedule();
  }

  /** A STUN datagram arrived on the socket. */
  handleStun(data: Uint8Array, from: Endpoint, now: number): void {
    if (this.nc.handleResponse(data, from, now) && this.nc.finishIfDone(now)) this.roundDone();
  }

  /** Timer: ends a timed-out round, starts a due one. */
  onTimer(now: number): void {
    if (this.nc.finishIfDone(now)) this.roundDone();
    if (this.map !== null && this.nc.due(now)) this.startStun();
  }

  /** When {@link onTimer} has work (Infinity without a DERP map). */
  nextDeadline(): number {
    return this.map === null ? Infinity : this.nc.nextDeadline();
  }

  /** Recomputes our endpoints (interface addresses may have changed); `stunned` after a round. */
  refreshEndpoints(stunned = false): void {
    const udp = this.d.udp();
    if (udp === null || udp.port === 0) return;
    const addrs = (this.d.localAddresses ?? localAddresses)();
    const eps = ourEndpoints([this.nc.mappedV4, this.nc.mappedV6], addrs, udp.port);
    this.d.core.setLocalEndpoints(eps, this.d.now(), stunned);
    const text = eps.map((e) => e.toString());
    if (text.join(",") !== this.eps.join(",")) {
      this.eps = text;
      this.d.onEndpoints?.([...text]);
    }
    this.d.flush();
  }

  /** Runs (or joins) a round; resolves with its report (the last one when nothing can run). */
  netcheck(): Promise<NetcheckReport> {
    if (this.map === null || this.d.udp() === null || this.closed) return Promise.resolve(this.report());
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.startStun();
    });
  }

  /** The last report, or an empty one. */
  report(): NetcheckReport {
    return this.nc.report ?? {
      UDP: false, IPv4: false, IPv6: false, GlobalV4: "", GlobalV6: "", MappingVariesByDestIP: null, PreferredDERP: this.nc.home,
      RegionLatency: {}, RegionV4Latency: {}, RegionV6Latency: {},
    };
  }

  close(): void {
    this.closed = true;
    const r = this.report();
    for (const w of this.waiters.splice(0)) w(r);
  }

  private roundDone(): void {
    this.refreshEndpoints(true);
    const home = this.nc.home;
    if (home !== this.d.legs.homeRegion) {
      this.d.legs.setHome(home);
      if (home !== 0) this.d.onHomeDerp?.(home);
    }
    const r = this.report();
    for (const w of this.waiters.splice(0)) w(r);
  }

  private async resolveTargets(m: DERPMap): Promise<StunTarget[]> {
    const resolve = this.d.resolveHost ?? (async (h: string) => (await lookup(h, { all: true })).map((a) => a.address));
    const out: StunTarget[] = [];
    for (const h of stunHosts(m)) {
      const direct = Endpoint.fromAddress(h.host, h.port);
      if (direct !== null) {
        out.push({ region: h.region, ep: direct });
        continue;
      }
      try {
        for (const a of await resolve(h.host)) {
          const ep = Endpoint.fromAddress(a, h.port);
          if (ep !== null) out.push({ region: h.region, ep });
        }
      } catch (e) {
        this.d.log.warn({ host: h.host, err: (e as Error).message }, "magicsock: cannot resolve STUN host");
      }
    }
    return out;
  }
}
