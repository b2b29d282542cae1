/**
 * Sans-IO endpoint discovery and home-DERP choice (after Tailscale's net/netcheck and
 * magicsock's ReSTUN): STUN Binding requests (@lattice/stun) to every DERP node's STUN
 * port on the shared UDP socket, a round every 20–26 s or on demand, the mapped address
 * (GlobalV4/6), MappingVariesByDestIP, per-region latency, and the home region: lowest
 * best-recent latency (5 min window), keeping the old home while it answers and the best
 * is less than 10 ms faster or more than ⅔ of its latency; with no answers (UDP blocked)
 * the old home stays, else the lowest eligible region id (deterministic fallback).
 */
import { Endpoint } from "@lattice/netaddr";
import { createBindingRequest, parseBindingResponse } from "@lattice/stun";
import type { NetcheckReport } from "./api.js";
import { HOME_HISTORY, HOME_KEEP_GAP, HOME_KEEP_RATIO, RESTUN_JITTER, RESTUN_MIN, STUN_ROUND_TIMEOUT } from "./constants.js";
import type { UdpOut } from "./core.js";
import type { MagicStats } from "./stats.js";

/** A DERP node's STUN address (resolved by the edge). */
export interface StunTarget {
  readonly region: number;
  readonly ep: Endpoint;
}

interface Answer {
  readonly target: StunTarget;
  readonly latency: number;
  readonly mapped: Endpoint;
}

interface Round {
  readonly started: number;
  readonly pending: Map<string, { target: StunTarget; at: number }>;
  readonly answers: Answer[];
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

export class Netcheck {
  /** Current home region (0 before one is chosen). */
  home = 0;
  /** The last finished round's report (null before the first). */
  report: NetcheckReport | null = null;
  /** Mapped addresses of the last round with answers. */
  mappedV4: Endpoint | null = null;
  mappedV6: Endpoint | null = null;
  private targets: StunTarget[] = [];
  private regions: number[] = [];
  private round: Round | null = null;
  private nextRoundAt = 0;
  private emptyRounds = 0;
  private readonly history = new Map<number, { at: number; ms: number }[]>();

  constructor(private readonly random: (n: number) => Uint8Array, private readonly stats: MagicStats) {}

  /** Regions that may be home (NoMeasureNoHome excluded by the caller) and the STUN targets. */
  configure(regions: number[], targets: StunTarget[]): void {
    this.regions = [...regions].sort((a, b) => a - b);
    this.targets = targets;
    this.nextRoundAt = 0;
    if (this.home !== 0 && !this.regions.includes(this.home)) this.home = 0;
  }

  /** Whether a round is running. */
  get running(): boolean {
    return this.round !== null;
  }

  /** Whether a new round is due at `now` (none running). */
  due(now: number): boolean {
    return this.round === null && now >= this.nextRoundAt;
  }

  /** Starts a round: the Binding requests to send. With no targets the round ends at once. */
  startRound(now: number): UdpOut[] {
    const pending = new Map<string, { target: StunTarget; at: number }>();
    const out: UdpOut[] = [];
    for (const t of this.targets) {
      const { transactionId, packet } = createBindingRequest(this.random);
      pending.set(hex(transactionId), { target: t, at: now });
      out.push({ data: packet, to: t.ep });
    }
    this.stats.stunSent += out.length;
    this.round = { started: now, pending, answers: [] };
    return out;
  }

  /** A STUN datagram from `from`; returns true when it answered a pending request. */
  handleResponse(data: Uint8Array, from: Endpoint, now: number): boolean {
    const r = parseBindingResponse(data);
    if (!r.ok) {
      this.stats.dropStunBad++;
      return false;
    }
    const tx = hex(r.value.transactionId);
    const p = this.round?.pending.get(tx);
    if (p === undefined || !from.sameAddrPort(p.target.ep)) {
      this.stats.dropStunUnknown++;
      return false;
    }
    this.round!.pending.delete(tx);
    this.stats.stunRecv++;
    const m = r.value.mapped;
    this.round!.answers.push({ target: p.target, latency: Math.max(0, now - p.at), mapped: Endpoint.of(m.ip, m.port) });
    return true;
  }

  /** Ends the round when everything answered or it timed out; returns true when it ended now. */
  finishIfDone(now: number): boolean {
    const r = this.round;
    if (r === null || (r.pending.size > 0 && now < r.started + STUN_ROUND_TIMEOUT)) return false;
    this.round = null;
    const rand = this.random(2);
    this.nextRoundAt = now + RESTUN_MIN + (((rand[0]! << 8) | rand[1]!) % RESTUN_JITTER);
    this.finish(r, now);
    return true;
  }

  /** When to call {@link finishIfDone} / start the next round. */
  nextDeadline(): number {
    return this.round !== null ? this.round.started + STUN_ROUND_TIMEOUT : this.nextRoundAt;
  }

  private finish(r: Round, now: number): void {
    const lat = (fam: 4 | 6 | 0): Record<string, number> => {
      const o: Record<string, number> = {};
      for (const a of r.answers) {
        if (fam !== 0 && a.target.ep.family !== fam) continue;
        const k = String(a.target.region);
        const ns = Math.round(a.latency * 1e6);
        if (o[k] === undefined || ns < o[k]!) o[k] = ns;
      }
      return o;
    };
    const v4 = r.answers.filter((a) => a.target.ep.family === 4);
    const v6 = r.answers.filter((a) => a.target.ep.family === 6);
    if (v4.length > 0) this.mappedV4 = v4[0]!.mapped;
    if (v6.length > 0) this.mappedV6 = v6[0]!.mapped;
    // One round without any answer (a lost burst) keeps the mapped addresses, so our
    // endpoint list does not flap at control; the second in a row forgets them.
    this.emptyRounds = r.answers.length === 0 ? this.emptyRounds + 1 : 0;
    if (this.emptyRounds >= 2) {
      this.mappedV4 = null;
      this.mappedV6 = null;
    }
    const servers = new Set(v4.map((a) => a.target.ep.address));
    const varies = servers.size >= 2 ? new Set(v4.map((a) => a.mapped.toString())).size > 1 : null;
    this.chooseHome(r, now);
    this.report = {
      UDP: r.answers.length > 0,
      IPv4: v4.length > 0,
      IPv6: v6.length > 0,
      GlobalV4: v4.length > 0 ? v4[0]!.mapped.toString() : "",
      GlobalV6: v6.length > 0 ? v6[0]!.mapped.toString() : "",
      MappingVariesByDestIP: varies,
      PreferredDERP: this.home,
      RegionLatency: lat(0),
      RegionV4Latency: lat(4),
      RegionV6Latency: lat(6),
    };
  }

  private chooseHome(r: Round, now: number): void {
    for (const a of r.answers) {
      const h = this.history.get(a.target.region) ?? [];
      h.push({ at: now, ms: a.latency });
      this.history.set(a.target.region, h);
    }
    const best = new Map<number, number>();
    for (const [region, h] of this.history) {
      const keep = h.filter((x) => now - x.at <= HOME_HISTORY);
      if (keep.length === 0) this.history.delete(region);
      else this.history.set(region, keep);
      if (keep.length > 0 && this.regions.includes(region)) best.set(region, Math.min(...keep.map((x) => x.ms)));
    }
    const answered = new Set(r.answers.map((a) => a.target.region));
    if (answered.size === 0 || best.size === 0) {
      if (this.home === 0 || !this.regions.includes(this.home)) this.home = this.regions[0] ?? 0;
      return;
    }
    let bestRegion = 0;
    let bestMs = Infinity;
    for (const region of this.regions) {
      const ms = best.get(region);
      if (ms !== undefined && ms < bestMs) {
        bestMs = ms;
        bestRegion = region;
      }
    }
    const old = this.home;
    const oldMs = best.get(old);
    if (old !== 0 && old !== bestRegion && answered.has(old) && oldMs !== undefined) {
      if (oldMs - bestMs < HOME_KEEP_GAP || bestMs > oldMs * HOME_KEEP_RATIO) return;
    }
    this.home = bestRegion;
  }
}
