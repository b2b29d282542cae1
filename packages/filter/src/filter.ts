/**
 * The node's stateful packet filter, following Tailscale's `wgengine/filter.Filter`
 * (RunIn/RunOut/pre, runIn4/runIn6, matches.match/matchIPsOnly/
 * matchProtoAndIPsOnlyIfAllPorts). Per packet: decode the header (no allocation), run the
 * direction-agnostic pre-checks, then for inbound packets the destination must be one of
 * `localAddrs` and the protocol logic decides. See README.md for the full decision table.
 */
import type { FilterRule } from "@lattice/types";
import { type CompiledMatch, compileRules, DST_WORDS } from "./compile.js";
import { FilterRuleError } from "./errors.js";
import { FlowTable, type FlowTableOptions } from "./flows.js";
import { cmpWords, parseAddrSet, RangeSet, type AddrRange } from "./ipset.js";
import { DecodeStatus, ParsedPacket, Proto } from "./packet.js";
import { ACCEPT_REASONS, type AcceptReason, DROP_REASONS, type DropReason, type Verdict, VERDICTS, accept, drop } from "./verdict.js";

/** Options of {@link Filter.fromRules}. */
export interface FilterOptions extends FlowTableOptions {
  /**
   * The filter this one replaces: flow table and counters are shared, so flows this node
   * started survive a new netmap (Tailscale's `shareStateWith`). The flow-table options
   * are then ignored.
   */
  shareStateWith?: Filter;
}

/** Counters of one direction: packets by verdict reason. */
export interface DirectionCounters {
  accepted: Record<AcceptReason, number>;
  dropped: Record<DropReason, number>;
}

/** Counters of a filter (shared with the filters it replaced or that replace it). */
export interface FilterCounters {
  in: DirectionCounters;
  out: DirectionCounters;
}

interface SharedState {
  readonly flows: FlowTable;
  readonly countIn: Float64Array;
  readonly countOut: Float64Array;
}

const V_KEEPALIVE = accept("keepalive");
const V_FRAGMENT = accept("fragment");
const V_ICMP_RESPONSE = accept("icmp-response");
const V_ICMP = accept("icmp");
const V_TCP_NON_SYN = accept("tcp-non-syn");
const V_TCP = accept("tcp");
const V_FLOW = accept("flow");
const V_UDP = accept("udp");
const V_TSMP = accept("tsmp");
const V_PORTLESS = accept("portless");
const V_OUTBOUND = accept("outbound");
const V_TOO_SHORT = drop("too-short");
const V_MALFORMED = drop("malformed");
const V_UNKNOWN_PROTO = drop("unknown-protocol");
const V_MULTICAST = drop("multicast");
const V_LINK_LOCAL = drop("link-local");
const V_NOT_LOCAL = drop("not-local");
const V_NO_RULE = drop("no-rule");

/** 169.254.169.254 (cloud metadata/DNS) is the one link-local destination Tailscale lets through. */
const METADATA_V4 = 0xa9fea9fe;

/**
 * Whether a destination entry of `m` holds `ip` and a port in its range. `mode` 0: `port`
 * must be in the range; 1: any port (ICMP); 2: only entries covering all ports.
 * IPv4 entries and addresses have words 0..2 zero, so word 3 alone decides.
 */
function dstContains(m: CompiledMatch, ip: Uint32Array, v4: boolean, port: number, mode: number): boolean {
  const d = m.dsts;
  const a = ip[3]!;
  for (let o = 0; o < d.length; o += DST_WORDS) {
    if (mode === 0) {
      if (port < d[o + 8]! || port > d[o + 9]!) continue;
    } else if (mode === 2 && (d[o + 8] !== 0 || d[o + 9] !== 65535)) {
      continue;
    }
    if (v4) {
      if (a >= d[o + 3]! && a <= d[o + 7]!) return true;
    } else if (cmpWords(ip, 0, d, o) >= 0 && cmpWords(ip, 0, d, o + 4) <= 0) {
      return true;
    }
  }
  return false;
}

/** A compiled, stateful packet filter. Build with {@link Filter.fromRules}. */
export class Filter {
  /** Rule and local-address entries that were skipped (see {@link FilterRuleError}). */
  readonly errors: readonly FilterRuleError[];
  private readonly matches4: readonly CompiledMatch[];
  private readonly matches6: readonly CompiledMatch[];
  private readonly local4: RangeSet;
  private readonly local6: RangeSet;
  private readonly state: SharedState;
  private readonly pkt = new ParsedPacket();

  private constructor(matches4: readonly CompiledMatch[], matches6: readonly CompiledMatch[], local: AddrRange[], errors: FilterRuleError[], state: SharedState) {
    this.matches4 = matches4;
    this.matches6 = matches6;
    this.local4 = new RangeSet(local.filter((r) => r.family === 4));
    this.local6 = new RangeSet(local.filter((r) => r.family === 6));
    this.errors = Object.freeze(errors);
    this.state = state;
  }

  /**
   * Compiles `rules` (tailcfg `PacketFilter`) for a node whose own addresses (and routed
   * prefixes) are `localAddrs` (IPs, CIDRs, `a-b` ranges or `*`). Never throws on rule
   * content: unusable entries are skipped and listed in `errors`.
   * @throws RangeError for bad flow-table options.
   */
  static fromRules(rules: readonly FilterRule[], localAddrs: readonly string[], opts: FilterOptions = {}): Filter {
    const compiled = compileRules(rules);
    const errors = compiled.errors;
    const local: AddrRange[] = [];
    if (!Array.isArray(localAddrs)) errors.push(new FilterRuleError("localAddrs", localAddrs, "not an array"));
    (Array.isArray(localAddrs) ? localAddrs : []).forEach((a, i) => {
      const p = typeof a === "string" ? parseAddrSet(a) : ({ ok: false, message: "not a string" } as const);
      if (p.ok && p.cap === undefined) local.push(...p.ranges);
      else errors.push(new FilterRuleError(`localAddrs[${i}]`, a, p.ok ? "capability is not an address" : p.message));
    });
    const n = VERDICTS.length;
    const state = opts.shareStateWith?.state ?? { flows: new FlowTable(opts), countIn: new Float64Array(n), countOut: new Float64Array(n) };
    return new Filter(compiled.matches4, compiled.matches6, local, errors, state);
  }

  /** Number of tracked outbound UDP/SCTP flows. */
  get flowCount(): number {
    return this.state.flows.size;
  }

  /**
   * Decides on a packet arriving from a peer for this node. `packet` is a whole IP packet
   * (0 bytes = WireGuard keepalive); `now` in milliseconds from a monotonic clock. Never
   * throws; does not allocate.
   */
  runIn(packet: Uint8Array, now: number): Verdict {
    const v = this.decideIn(packet, now);
    this.state.countIn[v.index]!++;
    return v;
  }

  /**
   * Decides on a packet this node sends to a peer and records UDP/SCTP flows so that the
   * replies pass {@link runIn}. Outbound packets are only dropped by the pre-checks
   * (garbage, multicast, link-local).
   */
  runOut(packet: Uint8Array, now: number): Verdict {
    const v = this.decideOut(packet, now);
    this.state.countOut[v.index]!++;
    return v;
  }

  /** A snapshot of the counters. */
  counters(): FilterCounters {
    const dir = (c: Float64Array): DirectionCounters => ({
      accepted: Object.fromEntries(ACCEPT_REASONS.map((r, i) => [r, c[i]!])) as Record<AcceptReason, number>,
      dropped: Object.fromEntries(DROP_REASONS.map((r, i) => [r, c[ACCEPT_REASONS.length + i]!])) as Record<DropReason, number>,
    });
    return { in: dir(this.state.countIn), out: dir(this.state.countOut) };
  }

  /** Direction-agnostic checks (Tailscale's `pre`); null means "no verdict yet". */
  private pre(packet: Uint8Array): Verdict | null {
    const q = this.pkt;
    switch (q.decode(packet)) {
      case DecodeStatus.Empty:
        return V_KEEPALIVE;
      case DecodeStatus.TooShort:
        return V_TOO_SHORT;
      case DecodeStatus.Malformed:
        return V_MALFORMED;
      case DecodeStatus.UnknownProtocol:
        return V_UNKNOWN_PROTO;
      default:
        break;
    }
    const d = q.dst;
    if (q.version === 4) {
      if (d[3]! >>> 28 === 0xe) return V_MULTICAST;
      if (d[3]! >>> 16 === 0xa9fe && d[3] !== METADATA_V4) return V_LINK_LOCAL;
    } else {
      if (d[0]! >>> 24 === 0xff) return V_MULTICAST;
      if (d[0]! >>> 22 === 0x3fa) return V_LINK_LOCAL;
    }
    if (q.fragment) return V_FRAGMENT;
    return null;
  }

  private decideOut(packet: Uint8Array, now: number): Verdict {
    const pre = this.pre(packet);
    if (pre !== null) return pre;
    const q = this.pkt;
    if (q.proto === Proto.UDP || q.proto === Proto.SCTP) {
      this.state.flows.add(q.version, q.proto, q.dst, q.src, q.dstPort, q.srcPort, now);
    }
    return V_OUTBOUND;
  }

  private decideIn(packet: Uint8Array, now: number): Verdict {
    const pre = this.pre(packet);
    if (pre !== null) return pre;
    const q = this.pkt;
    const v4 = q.version === 4;
    if (!(v4 ? this.local4 : this.local6).contains(q.dst)) return V_NOT_LOCAL;
    const ms = v4 ? this.matches4 : this.matches6;
    switch (q.proto) {
      case Proto.TCP:
        // Replies on connections this node opened carry ACK; a new inbound connection
        // cannot start without a bare SYN, so only SYNs are checked (as Tailscale).
        if (!q.isTcpSyn()) return V_TCP_NON_SYN;
        return this.match(ms, false) ? V_TCP : V_NO_RULE;
      case Proto.UDP:
      case Proto.SCTP:
        if (this.state.flows.hit(q.version, q.proto, q.src, q.dst, q.srcPort, q.dstPort, now)) return V_FLOW;
        return this.match(ms, false) ? V_UDP : V_NO_RULE;
      case Proto.TSMP:
        return V_TSMP;
      default:
        if (q.proto === (v4 ? Proto.ICMPv4 : Proto.ICMPv6)) {
          if (q.isEchoReply() || q.isIcmpError()) return V_ICMP_RESPONSE;
          // Any rule from this source to this destination (any port, any protocol) allows ICMP.
          return this.match(ms, true) ? V_ICMP : V_NO_RULE;
        }
        return this.matchAllPorts(ms) ? V_PORTLESS : V_NO_RULE;
    }
  }

  /** Tailscale's `match` (ipsOnly=false) and `matchIPsOnly` (ipsOnly=true: no proto or port check). */
  private match(ms: readonly CompiledMatch[], ipsOnly: boolean): boolean {
    const q = this.pkt;
    const v4 = q.version === 4;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i]!;
      if (!ipsOnly && m.protos[q.proto] !== 1) continue;
      // Destinations first: usually few, and the port test rejects most rules cheaply.
      if (dstContains(m, q.dst, v4, q.dstPort, ipsOnly ? 1 : 0) && m.srcs.contains(q.src)) return true;
    }
    return false;
  }

  /** Tailscale's `matchProtoAndIPsOnlyIfAllPorts`: other protocols need a 0-65535 rule. */
  private matchAllPorts(ms: readonly CompiledMatch[]): boolean {
    const q = this.pkt;
    const v4 = q.version === 4;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i]!;
      if (m.protos[q.proto] !== 1) continue;
      if (dstContains(m, q.dst, v4, 0, 2) && m.srcs.contains(q.src)) return true;
    }
    return false;
  }
}
