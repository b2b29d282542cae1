import type { FilterRule } from "@lattice/types";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Filter } from "../src/index.js";
import { build, ICMP4, ICMP6, type PacketSpec, SCTP, TCP, TSMP, UDP } from "./build.js";

// A small address pool so random rules and packets meet: index 0..7 per family.
const addr = (family: 4 | 6, i: number) => (family === 4 ? `10.0.0.${i}` : `fd00::${i}`);

type AddrSet = { star: true } | { star: false; family: 4 | 6; lo: number; hi: number; text: string };
const addrSetArb: fc.Arbitrary<AddrSet> = fc.oneof(
  fc.constant<AddrSet>({ star: true }),
  fc.record({ family: fc.constantFrom<4 | 6>(4, 6), i: fc.integer({ min: 0, max: 7 }) }).map(({ family, i }) => ({ star: false as const, family, lo: i, hi: i, text: addr(family, i) })),
  fc.record({ family: fc.constantFrom<4 | 6>(4, 6), blk: fc.integer({ min: 0, max: 1 }) }).map(({ family, blk }) => ({
    star: false as const, family, lo: blk * 4, hi: blk * 4 + 3, text: `${addr(family, blk * 4)}/${family === 4 ? 30 : 126}`,
  })),
  fc.record({ family: fc.constantFrom<4 | 6>(4, 6), a: fc.integer({ min: 0, max: 7 }), b: fc.integer({ min: 0, max: 7 }) }).map(({ family, a, b }) => {
    const lo = Math.min(a, b), hi = Math.max(a, b);
    return { star: false as const, family, lo, hi, text: `${addr(family, lo)}-${addr(family, hi)}` };
  }),
);
const inSet = (s: AddrSet, family: 4 | 6, i: number) => s.star || (s.family === family && s.lo <= i && i <= s.hi);

const PORTS = [0, 22, 53, 80, 443, 65535];
const portRangeArb = fc.oneof(
  fc.constant({ First: 0, Last: 65535 }),
  fc.constantFrom(...PORTS).map((x) => ({ First: x, Last: x })),
  fc.tuple(fc.constantFrom(...PORTS), fc.constantFrom(...PORTS)).map(([a, b]) => ({ First: Math.min(a, b), Last: Math.max(a, b) })),
);
const PROTOS = [TCP, UDP, SCTP, ICMP4, ICMP6, 47, 116];
interface GenRule { srcs: AddrSet[]; dsts: { set: AddrSet; ports: { First: number; Last: number } }[]; protos?: number[] }
const ruleArb: fc.Arbitrary<GenRule> = fc.record(
  {
    srcs: fc.array(addrSetArb, { maxLength: 3 }),
    dsts: fc.array(fc.record({ set: addrSetArb, ports: portRangeArb }), { maxLength: 3 }),
    protos: fc.array(fc.constantFrom(...PROTOS), { maxLength: 3 }),
  },
  { requiredKeys: ["srcs", "dsts"] },
);
const toTailcfg = (r: GenRule): FilterRule => ({
  SrcIPs: r.srcs.map((s) => (s.star ? "*" : s.text)),
  DstPorts: r.dsts.map((d) => ({ IP: d.set.star ? "*" : d.set.text, Ports: d.ports })),
  ...(r.protos !== undefined ? { IPProto: r.protos } : {}),
});

interface GenPacket { family: 4 | 6; proto: number; src: number; dst: number; sport: number; dport: number; flags: number; icmpType: number; icmpCode: number }
const packetArb: fc.Arbitrary<GenPacket> = fc.record({
  family: fc.constantFrom<4 | 6>(4, 6),
  proto: fc.constantFrom(TCP, UDP, SCTP, ICMP4, ICMP6, TSMP, 47, 116),
  src: fc.integer({ min: 0, max: 7 }),
  dst: fc.integer({ min: 0, max: 7 }),
  sport: fc.constantFrom(...PORTS),
  dport: fc.constantFrom(...PORTS),
  flags: fc.constantFrom(0x02, 0x12, 0x10, 0x00, 0x03, 0x04),
  icmpType: fc.constantFrom(0, 8, 3, 11, 12, 5, 128, 129, 1, 2, 4, 135),
  icmpCode: fc.constantFrom(0, 1),
});
const specOf = (p: GenPacket): PacketSpec => ({
  proto: p.proto, src: addr(p.family, p.src), dst: addr(p.family, p.dst), sport: p.sport, dport: p.dport,
  flags: p.flags, icmpType: p.icmpType, icmpCode: p.icmpCode,
});

/** The decision procedure written out plainly from Tailscale's filter.go (the model). */
class Reference {
  private readonly flows = new Map<string, number>();
  constructor(private readonly rules: GenRule[], private readonly local: Set<string>, private readonly timeout: number) {}

  private protosOf(r: GenRule): number[] {
    return r.protos === undefined || r.protos.length === 0 ? [TCP, UDP, ICMP4, ICMP6] : r.protos;
  }
  private match(p: GenPacket, mode: "ports" | "ipsOnly" | "allPorts"): boolean {
    return this.rules.some((r) => {
      if (mode !== "ipsOnly" && !this.protosOf(r).includes(p.proto)) return false;
      if (!r.srcs.some((s) => inSet(s, p.family, p.src))) return false;
      return r.dsts.some((d) => {
        if (!inSet(d.set, p.family, p.dst)) return false;
        if (mode === "ipsOnly") return true;
        if (mode === "allPorts") return d.ports.First === 0 && d.ports.Last === 65535;
        return d.ports.First <= p.dport && p.dport <= d.ports.Last;
      });
    });
  }
  in(p: GenPacket, now: number): string {
    if (!this.local.has(`${p.family}:${p.dst}`)) return "not-local";
    if (p.proto === TCP) {
      if ((p.flags & 0x12) !== 0x02) return "tcp-non-syn";
      return this.match(p, "ports") ? "tcp" : "no-rule";
    }
    if (p.proto === UDP || p.proto === SCTP) {
      const k = `${p.family}/${p.proto}/${p.src}:${p.sport}>${p.dst}:${p.dport}`;
      const exp = this.flows.get(k);
      if (exp !== undefined && exp > now) {
        this.flows.set(k, now + this.timeout);
        return "flow";
      }
      this.flows.delete(k);
      return this.match(p, "ports") ? "udp" : "no-rule";
    }
    if (p.proto === TSMP) return "tsmp";
    if (p.proto === (p.family === 4 ? ICMP4 : ICMP6)) {
      const reply = p.icmpCode === 0 && p.icmpType === (p.family === 4 ? 0 : 129);
      const error = p.family === 4 ? [3, 11, 12].includes(p.icmpType) : [1, 2, 3, 4].includes(p.icmpType);
      if (reply || error) return "icmp-response";
      return this.match(p, "ipsOnly") ? "icmp" : "no-rule";
    }
    return this.match(p, "allPorts") ? "portless" : "no-rule";
  }
  out(p: GenPacket, now: number): string {
    if (p.proto === UDP || p.proto === SCTP) this.flows.set(`${p.family}/${p.proto}/${p.dst}:${p.dport}>${p.src}:${p.sport}`, now + this.timeout);
    return "outbound";
  }
}

describe("filter properties", () => {
  it("never throws on arbitrary bytes, in either direction, and always returns a known verdict", () => {
    const f = Filter.fromRules([{ SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] }], ["*"]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (bytes, out) => {
        // Make IPv4/IPv6 versions likely so the deeper decoders are reached.
        if (bytes.length > 0 && bytes[0]! % 3 !== 0) bytes[0] = (bytes[0]! & 0x0f) | (bytes[0]! % 2 ? 0x40 : 0x60);
        const v = out ? f.runOut(bytes, 0) : f.runIn(bytes, 0);
        expect(typeof v.reason).toBe("string");
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws on arbitrary rule JSON or local addresses", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.anything(), (rules, local) => {
        const f = Filter.fromRules([rules, { SrcIPs: rules, DstPorts: [rules] }] as unknown as FilterRule[], local as string[]);
        f.runIn(build({ proto: TCP, src: "10.0.0.1", dst: "10.0.0.2", dport: 22 }), 0);
      }),
      { numRuns: 500 },
    );
  });

  it("matches the reference model for random rules, local addresses and packet sequences", () => {
    const timeout = 3000;
    fc.assert(
      fc.property(
        fc.array(ruleArb, { maxLength: 5 }),
        fc.uniqueArray(fc.tuple(fc.constantFrom<4 | 6>(4, 6), fc.integer({ min: 0, max: 7 })), { maxLength: 10, selector: (x) => `${x[0]}:${x[1]}` }),
        fc.array(fc.record({ out: fc.boolean(), reply: fc.boolean(), dt: fc.integer({ min: 0, max: 4500 }), p: packetArb }), { minLength: 1, maxLength: 30 }),
        (rules, local, events) => {
          const f = Filter.fromRules(rules.map(toTailcfg), local.map(([fam, i]) => addr(fam, i)), { idleTimeoutMs: timeout });
          expect(f.errors).toEqual([]);
          const ref = new Reference(rules, new Set(local.map(([fam, i]) => `${fam}:${i}`)), timeout);
          let now = 0;
          let prev: { out: boolean; p: GenPacket } | undefined;
          for (const ev of events) {
            // Half the events answer the previous packet (swapped ends, other direction),
            // so flows are exercised.
            const e = ev.reply && prev !== undefined
              ? { ...ev, out: !prev.out, p: { ...prev.p, src: prev.p.dst, dst: prev.p.src, sport: prev.p.dport, dport: prev.p.sport } }
              : ev;
            prev = e;
            now += e.dt;
            const bytes = build(specOf(e.p));
            const got = e.out ? f.runOut(bytes, now) : f.runIn(bytes, now);
            expect(got.reason).toBe(e.out ? ref.out(e.p, now) : ref.in(e.p, now));
          }
        },
      ),
      { numRuns: 1500 },
    );
  });
});
