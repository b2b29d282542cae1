/**
 * The pure parts of issue 6 A6/A14: source keys for per-source limits, the Hostinfo
 * change rate limit (fake clock and timers), the Hostinfo fields netmaps carry, and the
 * limits' configuration.
 */
import { describe, expect, it } from "vitest";
import type { NodeUpdate } from "../src/nodeapi/backend.js";
import { HostinfoGate } from "../src/nodeapi/hostinfo-gate.js";
import { peerHostinfo } from "../src/mapper/peer-hostinfo.js";
import { sourceKey } from "../src/source-key.js";
import { DEFAULT_NODE_LIMITS, readEnv, resolveConfig } from "../src/config.js";

describe("sourceKey", () => {
  it("counts IPv4 per address, IPv6 per /64, IPv4-mapped as IPv4", () => {
    expect(sourceKey("192.0.2.7")).toBe("192.0.2.7");
    expect(sourceKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(sourceKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(sourceKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(sourceKey("::1")).toBe("0:0:0:0::/64");
    expect(sourceKey("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
    expect(sourceKey(undefined)).toBe("unknown");
    expect(sourceKey("not an address")).toBe("unknown");
  });
});

/** Fake clock and timers driving a gate. */
function fakeGate(minIntervalMs: number) {
  let now = 0;
  const timers: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  const applied: { nodeId: number; update: NodeUpdate }[] = [];
  const gate = new HostinfoGate({
    minIntervalMs,
    now: () => now,
    timers: {
      setTimeout: (fn, ms) => {
        const t = { at: now + ms, fn, id: ids++ };
        timers.push(t);
        return t.id;
      },
      clearTimeout: (h) => {
        const i = timers.findIndex((t) => t.id === h);
        if (i >= 0) timers.splice(i, 1);
      },
    },
    apply: async (nodeId, update) => void applied.push({ nodeId, update }),
  });
  const advance = (ms: number) => {
    now += ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      const t = timers[0];
      if (!t || t.at > now) break;
      timers.shift();
      t.fn();
    }
  };
  return { gate, applied, advance, pendingTimers: () => timers.length };
}

describe("HostinfoGate", () => {
  const hi = (v: string) => ({ Hostname: "n", OSVersion: v });

  it("lets a burst of changes through, then holds changes back and applies only the newest one later", () => {
    const { gate, applied, advance } = fakeGate(1000);
    expect(gate.admit(1, { hostinfo: hi("0") })).toEqual({ hostinfo: hi("0") }); // first seen: free
    for (const v of ["1", "2", "3"]) expect(gate.admit(1, { hostinfo: hi(v) })?.hostinfo).toEqual(hi(v)); // burst of 3
    // Now held: the rest of the request still applies.
    expect(gate.admit(1, { hostinfo: hi("4"), endpoints: ["192.0.2.1:1"] })).toEqual({ endpoints: ["192.0.2.1:1"] });
    expect(gate.admit(1, { hostinfo: hi("5") })).toBeNull();
    expect(gate.counters.deferred).toBe(2);
    expect(gate.held()).toBe(1);
    advance(999);
    expect(applied).toEqual([]);
    advance(1);
    expect(applied).toEqual([{ nodeId: 1, update: { hostinfo: hi("5") } }]);
    expect(gate.counters.appliedLater).toBe(1);
    // Other nodes have their own budget.
    expect(gate.admit(2, { hostinfo: hi("x") })).not.toBeNull();
  });

  it("passes unchanged Hostinfo and drops a held change when the node goes back to what peers have", () => {
    const { gate, applied, advance, pendingTimers } = fakeGate(1000);
    gate.admit(1, { hostinfo: hi("a") });
    for (const v of ["b", "c", "d"]) gate.admit(1, { hostinfo: hi(v) });
    expect(gate.admit(1, { hostinfo: hi("e") })).toBeNull(); // held
    expect(gate.admit(1, { hostinfo: hi("d") })).toEqual({ hostinfo: hi("d") }); // same as applied: free, held one dropped
    expect(pendingTimers()).toBe(0);
    advance(5000);
    expect(applied).toEqual([]);
  });

  it("refills one change per interval", () => {
    const { gate, advance } = fakeGate(1000);
    gate.admit(1, { hostinfo: hi("0") });
    for (const v of ["1", "2", "3"]) gate.admit(1, { hostinfo: hi(v) });
    advance(1000);
    expect(gate.admit(1, { hostinfo: hi("4") })?.hostinfo).toEqual(hi("4"));
    expect(gate.admit(1, { hostinfo: hi("5") })).toBeNull();
  });

  it("close() cancels held changes", () => {
    const { gate, applied, advance } = fakeGate(1000);
    gate.admit(1, { hostinfo: hi("0") });
    for (const v of ["1", "2", "3", "4"]) gate.admit(1, { hostinfo: hi(v) });
    gate.close();
    advance(5000);
    expect(applied).toEqual([]);
  });
});

describe("peerHostinfo", () => {
  it("keeps only the fields clients read, copying rather than sharing", () => {
    const loc = { Country: "Canada", CountryCode: "CA" };
    const h = {
      Hostname: "h",
      OS: "windows",
      OSVersion: "10.0",
      IPNVersion: "1.80",
      PushDeviceToken: "t",
      NetInfo: { PreferredDERP: 1 },
      Services: [
        { Proto: "tcp", Port: 80, Description: "web" },
        { Proto: "peerapi4", Port: 1, Description: "x" },
        { Proto: "peerapi-dns-proxy", Port: 1 },
        { Proto: "peerapi6", Port: "bad" },
      ],
      sshHostKeys: ["k"],
      RoutableIPs: ["10.0.0.0/24"],
      Location: loc,
      ShareeNode: true,
      AppConnector: true,
      TPM: { Manufacturer: "MSFT" },
      RequestTags: ["tag:x"],
    };
    const out = peerHostinfo(h);
    expect(out).toEqual({
      Hostname: "h",
      OS: "windows",
      Services: [
        { Proto: "peerapi4", Port: 1 },
        { Proto: "peerapi-dns-proxy", Port: 1 },
      ],
      sshHostKeys: ["k"],
      RoutableIPs: ["10.0.0.0/24"],
      Location: loc,
      ShareeNode: true,
      AppConnector: true,
    });
    expect(out.Location).not.toBe(loc);
    expect(peerHostinfo(null)).toEqual({});
    expect(peerHostinfo({ Hostname: 5, sshHostKeys: [1], Services: "x", Location: [1] })).toEqual({});
  });
});

describe("limit settings", () => {
  it("have sane defaults and take config values and environment strings", () => {
    expect(resolveConfig({}).nodeLimits).toEqual(DEFAULT_NODE_LIMITS);
    const l = resolveConfig(
      { maxPendingRegistrations: 50, hostinfoMinInterval: "0s", registrationTimeout: "5m" },
      readEnv({ LATTICE_CONTROL_MAX_PENDING_REGISTRATIONS_PER_SOURCE: "3", LATTICE_CONTROL_REGISTRATION_IDLE_TIMEOUT: "30s", LATTICE_CONTROL_MAX_HOSTINFO_BYTES: "4096" }),
    ).nodeLimits;
    expect(l).toMatchObject({ maxPendingRegistrations: 50, maxPendingRegistrationsPerSource: 3, hostinfoMinIntervalMs: 0, registrationTimeoutMs: 300_000, registrationIdleMs: 30_000, maxHostinfoBytes: 4096 });
  });

  it("refuse nonsense naming the setting", () => {
    expect(() => resolveConfig({ registrationIdleTimeout: "1h" })).toThrow(/registrationIdleTimeout: 1h is longer than registrationTimeout/);
    expect(() => resolveConfig({ registrationTimeout: "0s" })).toThrow(/registrationTimeout: "0s" must be longer than 0/);
    expect(() => readEnv({ LATTICE_CONTROL_MAX_PENDING_REGISTRATIONS: "-1" })).toThrow(/maxPendingRegistrations/);
  });
});
