/**
 * Exit nodes (issue 7 A2, A3): exit routes go only to viewers allowed to use exit nodes,
 * and an approved exit node receives the filter for the internet traffic it forwards.
 */
import { describe, expect, it } from "vitest";
import { INTERNET_RANGES, IPSet, parsePrefix, rangesOverlap } from "../src/ip.js";
import { TAILNET, compileOn } from "./tailnet.js";

const ALICE = ["100.64.0.1", "fd7a:115c:a1e0::1"];
const EXIT_OWN = ["100.64.0.30/32", "fd7a:115c:a1e0::1e/128"];

describe("exit routes in AllowedIPs (A2)", () => {
  it("reaching an exit node's own address does not make it the viewer's exit node", () => {
    const out = compileOn({ grants: [{ src: ["alice@example.com"], dst: ["tag:exit"], ip: ["*"] }] });
    expect(out["alice-laptop"].peers.exit).toEqual(EXIT_OWN);
    // The exit node still sees alice (she may reach it), without any exit routes of hers.
    expect(out.exit.peers["alice-laptop"]).toEqual(["100.64.0.1/32", "fd7a:115c:a1e0::1/128"]);
  });

  it("an autogroup:internet grant gives its sources the exit routes, nobody else", () => {
    const out = compileOn({
      grants: [
        { src: ["alice@example.com"], dst: ["autogroup:internet"], ip: ["*"] },
        { src: ["bob@example.com"], dst: ["tag:exit"], ip: ["22"] },
      ],
    });
    expect(out["alice-laptop"].peers.exit).toEqual([...EXIT_OWN, "0.0.0.0/0", "::/0"]);
    expect(out["bob-laptop"].peers.exit).toEqual(EXIT_OWN);
  });

  it('"*" destinations keep allowing every source to use exit nodes', () => {
    const out = compileOn({ acls: [{ action: "accept", src: ["bob@example.com"], dst: ["*:*"] }] });
    expect(out["bob-laptop"].peers.exit).toEqual([...EXIT_OWN, "0.0.0.0/0", "::/0"]);
  });
});

describe("the exit node's packet filter (A3)", () => {
  const internet = new IPSet(INTERNET_RANGES);

  it("an autogroup:internet ACL sends the exit node rules from the sources to the public ranges", () => {
    const out = compileOn({ acls: [{ action: "accept", src: ["alice@example.com"], dst: ["autogroup:internet:*"] }] });
    const pf = out.exit.packetFilter;
    expect(pf).toHaveLength(1);
    expect(pf[0].SrcIPs).toEqual(ALICE);
    const ips = pf[0].DstPorts!.map((d) => d.IP);
    for (const d of pf[0].DstPorts!) expect(d.Ports).toEqual({ First: 0, Last: 65535 });
    // Split ranges, v4 and v6, exactly the public space.
    expect(ips).toContain("0.0.0.0/5");
    expect(ips).toContain("11.0.0.0/8");
    expect(ips).toContain("2000::/3");
    const got = new IPSet(ips.map((s) => parsePrefix(s)!));
    expect(got.ranges).toEqual(internet.ranges);
    for (const priv of ["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "fd7a:115c:a1e0::/48", "fc00::/7"]) {
      expect(got.overlaps(parsePrefix(priv)!), priv).toBe(false);
    }
    // Nobody else receives those rules (not the subnet router, not the users' devices).
    expect(out.router.packetFilter).toEqual([]);
    expect(out["bob-laptop"].packetFilter).toEqual([]);
    expect(out["alice-laptop"].peers.exit).toEqual([...EXIT_OWN, "0.0.0.0/0", "::/0"]);
  });

  it("a public destination prefix also lands on the exit node, with its ports", () => {
    const out = compileOn({ grants: [{ src: ["alice@example.com"], dst: ["8.8.8.8/32"], ip: ["udp:53"] }] });
    expect(out.exit.packetFilter).toEqual([{ SrcIPs: ALICE, DstPorts: [{ IP: "8.8.8.8", Ports: { First: 53, Last: 53 } }], IPProto: [17] }]);
    // Private destinations do not.
    const priv = compileOn({ grants: [{ src: ["alice@example.com"], dst: ["10.33.1.0/24"], ip: ["*"] }] });
    expect(priv.exit.packetFilter).toEqual([]);
    expect(priv.router.packetFilter).toHaveLength(1);
  });

  it("an exit node whose exit routes are not approved gets no internet rules", () => {
    const topo = structuredClone(TAILNET);
    topo.nodes.exit.approved_routes = [];
    const out = compileOn({ acls: [{ action: "accept", src: ["alice@example.com"], dst: ["autogroup:internet:*"] }] }, topo);
    expect(out.exit.packetFilter).toEqual([]);
    expect(INTERNET_RANGES.some((r) => rangesOverlap(r, parsePrefix("100.64.0.30")!))).toBe(false);
  });
});

