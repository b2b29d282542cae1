import type { FilterRule } from "@lattice/types";
import { describe, expect, it } from "vitest";
import { Filter, parseAddrSet } from "../src/index.js";
import { ACK, build, fragment4, fragment6, ICMP4, ICMP6, type PacketSpec, SCTP, SYN, TCP, TSMP, UDP } from "./build.js";

const ALLOWED_PROTO = 116;
const DENIED_PROTO = 127;
const p = (ip: string, first: number, last = first) => ({ IP: ip, Ports: { First: first, Last: last } });
const ALL = 65535;

// The rule set of Tailscale's filter_test.go newFilter, as tailcfg rules.
const RULES: FilterRule[] = [
  { SrcIPs: ["8.1.1.1", "8.2.2.2"], DstPorts: [p("1.2.3.4", 22), p("5.6.7.8", 23, 24)] },
  { SrcIPs: ["9.1.1.1", "9.2.2.2"], DstPorts: [p("1.2.3.4", 22), p("5.6.7.8", 23, 24)], IPProto: [SCTP] },
  { SrcIPs: ["8.1.1.1", "8.2.2.2"], DstPorts: [p("5.6.7.8", 27, 28)] },
  { SrcIPs: ["2.2.2.2"], DstPorts: [p("8.1.1.1", 22)] },
  { SrcIPs: ["0.0.0.0/0"], DstPorts: [p("100.122.98.50", 0, ALL)] },
  { SrcIPs: ["0.0.0.0/0"], DstPorts: [p("0.0.0.0/0", 443)] },
  { SrcIPs: ["153.1.1.1", "153.1.1.2", "153.3.3.3"], DstPorts: [p("1.2.3.4", 999)] },
  { SrcIPs: ["::1", "::2"], DstPorts: [p("2001::1", 22), p("2001::2", 22)] },
  { SrcIPs: ["::/0"], DstPorts: [p("::/0", 443)] },
  { SrcIPs: ["0.0.0.0/0"], DstPorts: [p("0.0.0.0/0", 0, ALL)], IPProto: [ALLOWED_PROTO] },
  { SrcIPs: ["::/0"], DstPorts: [p("::/0", 0, ALL)], IPProto: [ALLOWED_PROTO] },
  { SrcIPs: ["cap:cap-hit-1234-ssh"], DstPorts: [p("1.2.3.4", 22)] },
];
const LOCAL = ["100.122.98.50", "1.2.3.4", "5.6.7.8", "102.102.102.102", "119.119.119.119", "8.1.0.0/16", "2001::/16"];

const newFilter = (): Filter => Filter.fromRules(RULES, LOCAL);
const tcp = (src: string, dst: string, dport: number, sport = 0): PacketSpec => ({ proto: TCP, src, dst, sport, dport });

describe("rule matching (cases of Tailscale's TestFilter)", () => {
  const cases: [boolean, PacketSpec, string][] = [
    [true, tcp("8.1.1.1", "1.2.3.4", 22, 999), "listed source to listed port"],
    [true, { proto: ICMP4, src: "8.1.1.1", dst: "1.2.3.4" }, "echo request where the source has some port open"],
    [false, tcp("8.1.1.1", "1.2.3.4", 0), "port 0 is not in 22"],
    [true, tcp("8.1.1.1", "1.2.3.4", 22), "source port does not matter"],
    [false, tcp("8.1.1.1", "1.2.3.4", 21), "port just below the range"],
    [true, tcp("8.2.2.2", "1.2.3.4", 22), "second listed source"],
    [false, tcp("8.2.2.2", "1.2.3.4", 23), "port open on another destination only"],
    [false, tcp("8.3.3.3", "1.2.3.4", 22), "unlisted source"],
    [true, tcp("8.1.1.1", "5.6.7.8", 23), "range start"],
    [true, tcp("8.1.1.1", "5.6.7.8", 24), "range end"],
    [false, tcp("8.1.1.3", "5.6.7.8", 24), "source outside"],
    [false, tcp("8.1.1.1", "5.6.7.8", 22), "port open on the other destination"],
    [true, tcp("17.34.51.68", "8.1.34.51", 443), "any source to 443 of a local prefix"],
    [false, tcp("17.34.51.68", "8.1.34.51", 444), "444 is not 443"],
    [true, tcp("17.34.51.68", "100.122.98.50", 999), "all ports to one address"],
    [true, tcp("17.34.51.68", "100.122.98.50", 0), "all ports includes 0"],
    [true, tcp("::1", "2001::1", 22), "IPv6 listed source"],
    [true, { proto: ICMP6, src: "::1", dst: "2001::1" }, "IPv6 echo request where a port is open"],
    [true, tcp("::2", "2001::1", 22), "second IPv6 source"],
    [true, tcp("::2", "2001::2", 22), "second IPv6 destination"],
    [false, tcp("::1", "2001::1", 23), "IPv6 unlisted port"],
    [false, tcp("::1", "2001::3", 22), "IPv6 unlisted destination"],
    [false, tcp("::3", "2001::1", 22), "IPv6 unlisted source"],
    [true, tcp("::1", "2001::1", 443), "IPv6 any to 443"],
    [false, tcp("::1", "2001::1", 444), "IPv6 444"],
    [false, tcp("8.1.1.1", "16.32.48.64", 443), "rule allows it but the destination is not ours"],
    [false, tcp("1::", "2602::1", 443), "IPv6 destination not ours"],
    [false, { proto: SCTP, src: "8.1.1.1", dst: "1.2.3.4", sport: 999, dport: 22 }, "SCTP not in the default protocols"],
    [true, { proto: SCTP, src: "9.1.1.1", dst: "1.2.3.4", sport: 999, dport: 22 }, "SCTP where the rule names it"],
    [true, { proto: ALLOWED_PROTO, src: "1.2.3.4", dst: "5.6.7.8" }, "other protocol with an all-ports rule"],
    [true, { proto: ALLOWED_PROTO, src: "2001::1", dst: "2001::2" }, "IPv6 other protocol with an all-ports rule"],
    [false, { proto: DENIED_PROTO, src: "1.2.3.4", dst: "5.6.7.8" }, "other protocol without a rule"],
    [false, { proto: DENIED_PROTO, src: "2001::1", dst: "2001::2" }, "IPv6 other protocol without a rule"],
    [false, tcp("10.0.0.1", "1.2.3.4", 22, 30000), "cap: sources match nothing without a capability lookup"],
  ];
  it.each(cases)("accept=%s %j (%s)", (want, spec) => {
    const f = newFilter();
    const v = f.runIn(build(spec), 0);
    expect(v.accept).toBe(want);
    if (!want) expect(v.reason).toMatch(/^(no-rule|not-local)$/);
    if (spec.proto === TCP) {
      // TCP and UDP are matched alike.
      expect(newFilter().runIn(build({ ...spec, proto: UDP }), 0).accept).toBe(want);
    }
  });

  it("a destination not in localAddrs is dropped as not-local even when a rule allows it", () => {
    expect(newFilter().runIn(build(tcp("8.1.1.1", "16.32.48.64", 443)), 0).reason).toBe("not-local");
  });
});

describe("stateful behaviour", () => {
  it("UDP replies to a flow this node started pass; unsolicited UDP does not (IPv4 and IPv6)", () => {
    for (const [a, b] of [["119.119.119.119", "102.102.102.102"], ["2001::2", "2001::1"]]) {
      const f = newFilter();
      const inbound = build({ proto: UDP, src: a!, dst: b!, sport: 4242, dport: 4343 });
      const outbound = build({ proto: UDP, src: b!, dst: a!, sport: 4343, dport: 4242 });
      expect(f.runIn(inbound, 0).reason).toBe("no-rule");
      expect(f.runOut(outbound, 0).reason).toBe("outbound");
      expect(f.runIn(inbound, 1).reason).toBe("flow");
      // Another port of the same peer is not part of the flow.
      expect(f.runIn(build({ proto: UDP, src: a!, dst: b!, sport: 4242, dport: 4344 }), 1).reason).toBe("no-rule");
    }
  });

  it("UDP flows expire after the idle timeout, and traffic keeps them alive", () => {
    const f = Filter.fromRules(RULES, LOCAL, { idleTimeoutMs: 1000 });
    const inbound = build({ proto: UDP, src: "119.119.119.119", dst: "102.102.102.102", sport: 53, dport: 5000 });
    f.runOut(build({ proto: UDP, src: "102.102.102.102", dst: "119.119.119.119", sport: 5000, dport: 53 }), 0);
    expect(f.runIn(inbound, 900).reason).toBe("flow");
    expect(f.runIn(inbound, 1800).reason).toBe("flow"); // refreshed at 900
    expect(f.runIn(inbound, 2801).reason).toBe("no-rule");
  });

  it("the flow table is bounded: the least recently used flow is evicted", () => {
    const f = Filter.fromRules(RULES, LOCAL, { maxFlows: 2 });
    const out = (port: number) => build({ proto: UDP, src: "102.102.102.102", dst: "119.119.119.119", sport: port, dport: 53 });
    const back = (port: number) => build({ proto: UDP, src: "119.119.119.119", dst: "102.102.102.102", sport: 53, dport: port });
    f.runOut(out(1), 0);
    f.runOut(out(2), 0);
    expect(f.runIn(back(1), 0).reason).toBe("flow"); // 1 is now the most recent
    f.runOut(out(3), 0); // evicts 2
    expect(f.flowCount).toBe(2);
    expect(f.runIn(back(2), 0).reason).toBe("no-rule");
    expect(f.runIn(back(1), 0).reason).toBe("flow");
    expect(f.runIn(back(3), 0).reason).toBe("flow");
  });

  it("a filter built with shareStateWith keeps the flows and counters of the one it replaces", () => {
    const old = newFilter();
    old.runOut(build({ proto: UDP, src: "102.102.102.102", dst: "119.119.119.119", sport: 5000, dport: 53 }), 0);
    const next = Filter.fromRules([], LOCAL, { shareStateWith: old });
    expect(next.runIn(build({ proto: UDP, src: "119.119.119.119", dst: "102.102.102.102", sport: 53, dport: 5000 }), 1).reason).toBe("flow");
    expect(next.counters().out.accepted.outbound).toBe(1);
    const fresh = Filter.fromRules([], LOCAL);
    expect(fresh.runIn(build({ proto: UDP, src: "119.119.119.119", dst: "102.102.102.102", sport: 53, dport: 5000 }), 1).reason).toBe("no-rule");
  });

  it("TCP: only a bare SYN is checked; SYN-ACK and ACK packets (replies to our connections) pass", () => {
    const f = Filter.fromRules([], LOCAL);
    expect(f.runIn(build({ proto: TCP, src: "8.8.8.8", dst: "1.2.3.4", sport: 80, dport: 5555, flags: SYN }), 0).reason).toBe("no-rule");
    expect(f.runIn(build({ proto: TCP, src: "8.8.8.8", dst: "1.2.3.4", sport: 80, dport: 5555, flags: SYN | ACK }), 0).reason).toBe("tcp-non-syn");
    expect(f.runIn(build({ proto: TCP, src: "8.8.8.8", dst: "1.2.3.4", sport: 80, dport: 5555, flags: ACK }), 0).reason).toBe("tcp-non-syn");
  });

  it("ICMP echo replies and errors pass without a rule; echo requests need one", () => {
    const f = Filter.fromRules([], LOCAL);
    const icmp = (v6: boolean, type: number, code = 0) =>
      f.runIn(build({ proto: v6 ? ICMP6 : ICMP4, src: v6 ? "2002::9" : "8.8.8.8", dst: v6 ? "2001::1" : "1.2.3.4", icmpType: type, icmpCode: code }), 0).reason;
    expect(icmp(false, 0)).toBe("icmp-response");
    expect(icmp(false, 3, 1)).toBe("icmp-response");
    expect(icmp(false, 11)).toBe("icmp-response");
    expect(icmp(false, 8)).toBe("no-rule");
    expect(icmp(false, 0, 1)).toBe("no-rule"); // an echo reply has code 0
    expect(icmp(true, 129)).toBe("icmp-response");
    expect(icmp(true, 2)).toBe("icmp-response");
    expect(icmp(true, 128)).toBe("no-rule");
  });

  it("TSMP between nodes passes to a local address", () => {
    expect(Filter.fromRules([], LOCAL).runIn(build({ proto: TSMP, src: "8.8.8.8", dst: "1.2.3.4" }), 0).reason).toBe("tsmp");
  });
});

describe("pre-checks (Tailscale's TestPreFilter and pre)", () => {
  const f = () => Filter.fromRules([{ SrcIPs: ["*"], DstPorts: [p("*", 0, ALL)], IPProto: [] }], ["*"]);
  it("empty packets are keepalives; short ones and garbage are dropped with distinct reasons", () => {
    expect(f().runIn(new Uint8Array(0), 0).reason).toBe("keepalive");
    expect(f().runIn(new TextEncoder().encode("short"), 0).reason).toBe("too-short");
    expect(f().runIn(new Uint8Array(40).fill(0xff), 0).reason).toBe("malformed");
    const truncated = build(tcp("8.1.1.1", "1.2.3.4", 22)).subarray(0, 30);
    expect(f().runIn(truncated, 0).reason).toBe("malformed");
    const hopByHop = build({ proto: UDP, src: "2001::5", dst: "2001::1", dport: 1 });
    hopByHop[6] = 0;
    expect(f().runIn(hopByHop, 0).reason).toBe("unknown-protocol");
  });
  it("multicast and link-local destinations are dropped both ways; 169.254.169.254 is the exception", () => {
    const ff = f();
    expect(ff.runIn(build({ proto: UDP, src: "1.2.3.4", dst: "224.0.0.251", dport: 5353 }), 0).reason).toBe("multicast");
    expect(ff.runOut(build({ proto: UDP, src: "fe80::1", dst: "ff02::fb", dport: 5353 }), 0).reason).toBe("multicast");
    expect(ff.runIn(build({ proto: UDP, src: "1.2.3.4", dst: "169.254.1.2", dport: 1 }), 0).reason).toBe("link-local");
    expect(ff.runOut(build({ proto: UDP, src: "2001::1", dst: "fe80::2", dport: 1 }), 0).reason).toBe("link-local");
    expect(ff.runOut(build({ proto: UDP, src: "1.2.3.4", dst: "169.254.169.254", dport: 53 }), 0).accept).toBe(true);
  });
  it("later fragments pass; tiny-offset fragments are malformed; a first fragment is matched on its ports", () => {
    const nf = newFilter();
    const spec: PacketSpec = { proto: UDP, src: "2001::5", dst: "2001::1", sport: 1234, dport: 443 };
    expect(nf.runIn(fragment6(spec, 0, true), 0).reason).toBe("udp");
    expect(nf.runIn(fragment6({ ...spec, dport: 444 }, 0, true), 0).reason).toBe("no-rule");
    expect(nf.runIn(fragment6(spec, 185, false), 0).reason).toBe("fragment");
    expect(nf.runIn(fragment6(spec, 3, false), 0).reason).toBe("malformed");
    const spec4: PacketSpec = { proto: UDP, src: "17.1.1.1", dst: "8.1.2.3", sport: 1, dport: 443 };
    expect(nf.runIn(fragment4(spec4, 0, true), 0).reason).toBe("udp");
    expect(nf.runIn(fragment4(spec4, 200, false), 0).reason).toBe("fragment");
    expect(nf.runIn(fragment4(spec4, 9, false), 0).reason).toBe("malformed");
  });
  it("IPv4 options are skipped: ports are read after the IHL, and IHL below 5 is malformed", () => {
    const plain = build(tcp("8.1.1.1", "1.2.3.4", 22));
    const withOpts = new Uint8Array(plain.length + 4);
    withOpts.set(plain.subarray(0, 20));
    withOpts.set([1, 1, 1, 0], 20); // NOP NOP NOP EOL
    withOpts.set(plain.subarray(20), 24);
    withOpts[0] = 0x46;
    withOpts[3] = withOpts.length;
    expect(newFilter().runIn(withOpts, 0).reason).toBe("tcp");
    withOpts[22 + 4] = 0; withOpts[23 + 4] = 23; // destination port 23
    expect(newFilter().runIn(withOpts, 0).reason).toBe("no-rule");
    const badIhl = plain.slice();
    badIhl[0] = 0x44;
    expect(newFilter().runIn(badIhl, 0).reason).toBe("malformed");
  });

  it("a total length beyond the buffer, or short transport headers, are malformed", () => {
    const b = build(tcp("8.1.1.1", "1.2.3.4", 22));
    const longer = b.slice(); longer[3] = b.length + 1;
    expect(newFilter().runIn(longer, 0).reason).toBe("malformed");
    const shortTcp = b.slice(); shortTcp[3] = 20 + 19;
    expect(newFilter().runIn(shortTcp, 0).reason).toBe("malformed");
    const igmp = build({ proto: 2, src: "8.1.1.1", dst: "1.2.3.4" }); igmp[3] = 20 + 7;
    expect(newFilter().runIn(igmp, 0).reason).toBe("malformed");
  });

  it("counts every decision by direction and reason", () => {
    const ff = f();
    ff.runIn(new Uint8Array(3), 0);
    ff.runIn(new Uint8Array(3), 0);
    ff.runOut(new Uint8Array(0), 0);
    const c = ff.counters();
    expect(c.in.dropped["too-short"]).toBe(2);
    expect(c.out.accepted.keepalive).toBe(1);
    expect(c.in.accepted.keepalive).toBe(0);
  });
});

describe("rule compilation", () => {
  it("parses the tailcfg address forms as Tailscale's parseIPSet (TestParseIPSet)", () => {
    const r = (s: string) => {
      const x = parseAddrSet(s);
      return x.ok ? x.ranges.map((a) => `${a.family}:${a.lo.toString(16)}-${a.hi.toString(16)}`) : x.message;
    };
    expect(r("8.8.8.8")).toEqual(["4:8080808-8080808"]);
    expect(r("1::2")).toEqual(["6:10000000000000000000000000002-10000000000000000000000000002"]);
    expect(r("8.8.8.0/24")).toEqual(["4:8080800-80808ff"]);
    expect(r("8.8.8.8/24")).toBe("8.8.8.8/24 contains non-network bits set");
    expect(r("1.0.0.0-1.255.255.255")).toEqual(["4:1000000-1ffffff"]);
    expect(r("1.0.0.2-1.0.0.1")).toBe('invalid IP range "1.0.0.2-1.0.0.1"');
    expect(r("*")).toEqual([`4:0-ffffffff`, `6:0-${"f".repeat(32)}`]);
    expect(parseAddrSet("cap:people-in-8.8.8.0/24")).toEqual({ ok: true, ranges: [], cap: "people-in-8.8.8.0/24" });
    expect(r("fe80::1%eth0")).toMatch(/invalid IP address/);
  });

  it("an IP range that is not a prefix is matched exactly at its ends", () => {
    const f = Filter.fromRules([{ SrcIPs: ["1.0.0.0-2.1.2.3"], DstPorts: [p("1.2.3.4", 22)] }], LOCAL);
    expect(f.runIn(build(tcp("2.1.2.3", "1.2.3.4", 22)), 0).accept).toBe(true);
    expect(f.runIn(build(tcp("2.1.2.4", "1.2.3.4", 22)), 0).accept).toBe(false);
    expect(f.runIn(build(tcp("0.255.255.255", "1.2.3.4", 22)), 0).accept).toBe(false);
  });

  it("absent or empty IPProto means TCP, UDP, ICMPv4, ICMPv6; an explicit list is exact", () => {
    const dflt = Filter.fromRules([{ SrcIPs: ["*"], DstPorts: [p("*", 0, ALL)] }], LOCAL);
    expect(dflt.runIn(build({ proto: SCTP, src: "8.8.8.8", dst: "1.2.3.4", dport: 1 }), 0).accept).toBe(false);
    expect(dflt.runIn(build({ proto: UDP, src: "8.8.8.8", dst: "1.2.3.4", dport: 1 }), 0).accept).toBe(true);
    const tcpOnly = Filter.fromRules([{ SrcIPs: ["*"], DstPorts: [p("*", 0, ALL)], IPProto: [TCP] }], LOCAL);
    expect(tcpOnly.runIn(build({ proto: UDP, src: "8.8.8.8", dst: "1.2.3.4", dport: 1 }), 0).accept).toBe(false);
    // ICMP only needs some rule between the addresses (Tailscale's matchIPsOnly).
    expect(tcpOnly.runIn(build({ proto: ICMP4, src: "8.8.8.8", dst: "1.2.3.4" }), 0).accept).toBe(true);
  });

  it("bad entries are skipped (never widening access) and reported with their position", () => {
    const f = Filter.fromRules(
      [
        { SrcIPs: ["8.1.1.1", "not-an-ip", "10.0.0.1/8"], DstPorts: [p("1.2.3.4", 22), { IP: "1.2.3.4", Ports: { First: -1, Last: 70000 } }] },
        { SrcIPs: ["*"], DstPorts: [p("cap:x", 1)], IPProto: [300] },
        null as unknown as FilterRule,
      ],
      [...LOCAL, "bogus"],
    );
    expect(f.errors.map((e) => [e.code, e.field])).toEqual([
      ["ERR_FILTER_RULE", "rules[0].SrcIPs[1]"],
      ["ERR_FILTER_RULE", "rules[0].SrcIPs[2]"],
      ["ERR_FILTER_RULE", "rules[0].DstPorts[1].Ports"],
      ["ERR_FILTER_RULE", "rules[1].IPProto[0]"],
      ["ERR_FILTER_RULE", "rules[1].DstPorts[0].IP"],
      ["ERR_FILTER_RULE", "rules[2]"],
      ["ERR_FILTER_RULE", "localAddrs[7]"],
    ]);
    expect(f.errors[0]!.message).toContain('"not-an-ip"');
    expect(Filter.fromRules([], "100.64.0.1" as unknown as string[]).errors.map((e) => e.field)).toEqual(["localAddrs"]);
    expect(f.runIn(build(tcp("8.1.1.1", "1.2.3.4", 22)), 0).accept).toBe(true);
    expect(f.runIn(build(tcp("10.9.9.9", "1.2.3.4", 22)), 0).accept).toBe(false);
  });
});
