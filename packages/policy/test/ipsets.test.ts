/**
 * IP sets (issue 7 A4; Tailscale kb/1387): `ipsets` definitions with add/remove entries,
 * `ipset:NAME` references in acls, grants and tests, validation with field and position.
 * Before, `ipsets` was accepted and ignored (even garbage) and `ipset:x` failed as an
 * "invalid alias".
 */
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../src/index.js";
import { compileOn, posOf, rejection, TAG_OWNERS } from "./tailnet.js";

const ALICE = ["100.64.0.1", "fd7a:115c:a1e0::1"];

describe("ipsets definitions", () => {
  it("add minus remove, nested sets and hosts, order of entries does not matter", () => {
    const out = compileOn({
      hosts: { printer: "10.33.0.7" },
      ipsets: {
        "ipset:office": ["remove host:printer", "add 10.33.0.0/24", "10.33.5.0/24"],
        "ipset:all": ["ipset:office", "add 10.33.9.9"],
      },
      acls: [{ action: "accept", src: ["alice@example.com"], dst: ["ipset:all:443"] }],
    });
    const ips = out.router.packetFilter[0].DstPorts!.map((d) => d.IP);
    expect(ips).toEqual(["10.33.0.0/30", "10.33.0.4/31", "10.33.0.6", "10.33.0.8/29", "10.33.0.16/28", "10.33.0.32/27", "10.33.0.64/26", "10.33.0.128/25", "10.33.5.0/24", "10.33.9.9"]);
    expect(out.router.packetFilter[0].SrcIPs).toEqual(ALICE);
    // The router serving the set's subnet is a peer of alice and shares its route with her.
    expect(out["alice-laptop"].peers.router).toContain("10.33.0.0/16");
  });

  it("works as a source, in grants, and selects tailnet nodes by address", () => {
    const out = compileOn({
      ipsets: { "ipset:laptops": ["100.64.0.1", "100.64.0.3"] },
      grants: [{ src: ["ipset:laptops"], dst: ["tag:server"], ip: ["22"] }],
    });
    expect(out.server1.packetFilter).toEqual([
      { SrcIPs: ["100.64.0.1", "100.64.0.3"], DstPorts: [{ IP: "100.64.0.10", Ports: { First: 22, Last: 22 } }, { IP: "fd7a:115c:a1e0::a", Ports: { First: 22, Last: 22 } }] },
    ]);
    expect(Object.keys(out["bob-laptop"].peers)).toEqual(["server1"]);
  });

  it("an IP set built from autogroup:internet (minus a range) is exit node access for its sources", () => {
    const out = compileOn({
      ipsets: { "ipset:web": ["autogroup:internet", "remove 8.0.0.0/8"] },
      acls: [{ action: "accept", src: ["alice@example.com"], dst: ["ipset:web:*"] }],
    });
    expect(out["alice-laptop"].peers.exit).toEqual(["100.64.0.30/32", "fd7a:115c:a1e0::1e/128", "0.0.0.0/0", "::/0"]);
    const ips = out.exit.packetFilter[0].DstPorts!.map((d) => d.IP);
    expect(ips).toContain("9.0.0.0/8");
    expect(ips).not.toContain("8.0.0.0/7");
    expect(ips.some((ip) => ip.startsWith("8."))).toBe(false);
  });

  it("tests may use IP sets", () => {
    expect(() =>
      compileOn({
        ipsets: { "ipset:office": ["10.33.0.0/24"] },
        acls: [{ action: "accept", src: ["alice@example.com"], dst: ["ipset:office:443"] }],
        tests: [{ src: "alice@example.com", accept: ["10.33.0.5:443"], deny: ["10.33.1.5:443"] }],
      }),
    ).not.toThrow();
  });
});

describe("ipsets validation", () => {
  function text(ipsets: unknown, dst = "ipset:office:*"): string {
    return JSON.stringify({ tagOwners: TAG_OWNERS, ipsets, acls: [{ action: "accept", src: ["*"], dst: [dst] }] }, null, 1);
  }

  it.each([
    [{ "ipset:office": ["10.33.0.0/33"] }, 'ipsets["ipset:office"][0]', "10.33.0.0/33", "prefix length"],
    [{ "ipset:office": ["add fd7a::/129"] }, 'ipsets["ipset:office"][0]', "add fd7a::/129", "0-128"],
    [{ "ipset:office": ["drop 10.0.0.0/8"] }, 'ipsets["ipset:office"][0]', "drop 10.0.0.0/8", "add TARGET"],
    [{ "ipset:office": ["tag:server"] }, 'ipsets["ipset:office"][0]', "tag:server", "no users, groups or tags"],
    [{ "ipset:office": ["host:nope"] }, 'ipsets["ipset:office"][0]', "host:nope", "host not found"],
    [{ "ipset:office": ["ipset:b"], "ipset:b": ["ipset:office"] }, 'ipsets["ipset:b"][0]', "ipset:office", "circular"],
    [{ "ipset:office": ["ipset:nope"] }, 'ipsets["ipset:office"][0]', "ipset:nope", "not found"],
  ])("rejects %j at %s", (ipsets, field, value, why) => {
    const t = text(ipsets);
    const e = rejection(t);
    expect(e.field).toBe(field);
    expect(e.value).toBe(value);
    expect(e.message).toContain(why);
    // The entry's position: inside the set the field names.
    const set = /^ipsets\["([^"]+)"\]/.exec(field)![1];
    expect([e.line, e.column]).toEqual(posOf(t, JSON.stringify(value), `"${set}": [`));
  });

  it("rejects a reference to an undefined IP set with the field of the reference", () => {
    const t = text({ "ipset:office": ["10.0.0.0/8"] }, "ipset:offce:*");
    const e = rejection(t);
    expect(e.code).toBe("unknown-reference");
    expect(e.field).toBe("acls[0].dst[0]");
    expect(e.value).toBe("ipset:offce:*");
    expect(e.message).toContain("not in ipsets");
    expect([e.line, e.column]).toEqual(posOf(t, '"ipset:offce:*"'));
  });

  it("rejects bad IP set names", () => {
    expect(() => parsePolicy(JSON.stringify({ ipsets: { office: ["10.0.0.0/8"] } }))).toThrow(/ipsets: "office"/);
  });
});
