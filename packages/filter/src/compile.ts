/**
 * tailcfg `FilterRule[]` → per-family match lists, following Tailscale's
 * `wgengine/filter.MatchesFromFilterRules` and `matchesFamily`: an absent or empty
 * `IPProto` means TCP, UDP, ICMPv4 and ICMPv6; protocol numbers outside 0..255 are
 * ignored; a match keeps, per family, the sources and destinations of that family and is
 * dropped for a family where either is empty. `cap:` sources need a capability lookup the
 * filter does not have, so they match nothing (Tailscale does the same without one).
 * `CapGrant` rules carry no `DstPorts` and so contribute nothing to the packet filter.
 */
import type { FilterRule } from "@lattice/types";
import { FilterRuleError } from "./errors.js";
import { type AddrRange, parseAddrSet, RangeSet, writeWords } from "./ipset.js";
import { Proto } from "./packet.js";

/** Words per destination entry: lo (4), hi (4), first port, last port. */
export const DST_WORDS = 10;

/** One compiled match of one family. */
export interface CompiledMatch {
  /** protos[p] === 1 when IP protocol p is covered. */
  readonly protos: Uint8Array;
  /** Source addresses. */
  readonly srcs: RangeSet;
  /** Destinations, {@link DST_WORDS} words each. */
  readonly dsts: Uint32Array;
}

/** Compiled rules by family plus the entries that were skipped. */
export interface CompiledRules {
  readonly matches4: readonly CompiledMatch[];
  readonly matches6: readonly CompiledMatch[];
  readonly errors: FilterRuleError[];
}

const DEFAULT_PROTOS = [Proto.TCP, Proto.UDP, Proto.ICMPv4, Proto.ICMPv6];

function isPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 65535;
}

/** The value as a list when it is an array, else empty (hostile JSON may carry anything). */
function asList(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Compiles rules; never throws on their content (bad entries go to `errors`). */
export function compileRules(rules: readonly FilterRule[]): CompiledRules {
  const errors: FilterRuleError[] = [];
  const matches4: CompiledMatch[] = [];
  const matches6: CompiledMatch[] = [];
  if (!Array.isArray(rules)) {
    errors.push(new FilterRuleError("rules", rules, "not an array"));
    return { matches4, matches6, errors };
  }
  rules.forEach((rule, ri) => {
    const at = `rules[${ri}]`;
    if (rule === null || typeof rule !== "object") {
      errors.push(new FilterRuleError(at, rule, "not an object"));
      return;
    }
    const protos = new Uint8Array(256);
    const list: readonly unknown[] = Array.isArray(rule.IPProto) && rule.IPProto.length > 0 ? rule.IPProto : DEFAULT_PROTOS;
    list.forEach((p, pi) => {
      if (typeof p === "number" && Number.isInteger(p) && p >= 0 && p <= 255) protos[p] = 1;
      else errors.push(new FilterRuleError(`${at}.IPProto[${pi}]`, p, "not a protocol number 0..255"));
    });
    const srcs: AddrRange[] = [];
    asList(rule.SrcIPs).forEach((s, si) => {
      const parsed = typeof s === "string" ? parseAddrSet(s) : ({ ok: false, message: "not a string" } as const);
      if (parsed.ok) srcs.push(...parsed.ranges);
      else errors.push(new FilterRuleError(`${at}.SrcIPs[${si}]`, s, parsed.message));
    });
    const dsts: { r: AddrRange; first: number; last: number }[] = [];
    asList(rule.DstPorts).forEach((raw, di) => {
      const dat = `${at}.DstPorts[${di}]`;
      const d = raw as { IP?: unknown; Ports?: unknown } | null;
      if (d === null || typeof d !== "object") return void errors.push(new FilterRuleError(dat, d, "not an object"));
      const ports = d.Ports as { First?: unknown; Last?: unknown } | undefined;
      if (ports === null || typeof ports !== "object" || !isPort(ports.First) || !isPort(ports.Last)) {
        return void errors.push(new FilterRuleError(`${dat}.Ports`, ports, "First and Last must be integers 0..65535"));
      }
      const parsed = typeof d.IP === "string" ? parseAddrSet(d.IP) : ({ ok: false, message: "not a string" } as const);
      if (!parsed.ok) return void errors.push(new FilterRuleError(`${dat}.IP`, d.IP, parsed.message));
      if (parsed.cap !== undefined) return void errors.push(new FilterRuleError(`${dat}.IP`, d.IP, "capability not allowed in DstPorts"));
      for (const r of parsed.ranges) dsts.push({ r, first: ports.First, last: ports.Last });
    });
    for (const family of [4, 6] as const) {
      const fs = srcs.filter((r) => r.family === family);
      const fd = dsts.filter((d) => d.r.family === family);
      if (fs.length === 0 || fd.length === 0) continue;
      const words = new Uint32Array(fd.length * DST_WORDS);
      fd.forEach((d, i) => {
        writeWords(d.r.lo, words, i * DST_WORDS);
        writeWords(d.r.hi, words, i * DST_WORDS + 4);
        words[i * DST_WORDS + 8] = d.first;
        words[i * DST_WORDS + 9] = d.last;
      });
      (family === 4 ? matches4 : matches6).push({ protos, srcs: new RangeSet(fs), dsts: words });
    }
  });
  return { matches4, matches6, errors };
}
