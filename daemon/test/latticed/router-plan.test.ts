// The Linux router's planner and executor: exact argv sequences for adding, changing and
// removing subnet routes, an exit node and the forwarding chains; crash cleanup; IPv6
// failures warn while IPv4 failures reject.
import { describe, expect, it } from "vitest";
import { cleanupCmds, planRouter, type RouterConfig } from "../../src/latticed/router-plan.js";
import { Router } from "../../src/latticed/router.js";
import { LatticedError } from "../../src/latticed/errors.js";

const argvs = (steps: ReturnType<typeof planRouter>): string[] => steps.flatMap((s) => s.cmds.map((c) => c.argv.join(" ")));
const RULES4 = ["ip -4 rule add pref 5210 fwmark 0x80000/0xff0000 table main", "ip -4 rule add pref 5230 fwmark 0x80000/0xff0000 table default", "ip -4 rule add pref 5250 fwmark 0x80000/0xff0000 type unreachable", "ip -4 rule add pref 5270 table 52"];
const RULES6 = RULES4.map((r) => r.replace("-4", "-6"));
const client: RouterConfig = { routes: ["10.77.0.0/24"], throws: [], forward: null };

describe("router planner", () => {
  it("a running client: its accepted subnet routes in table 52, then the four policy rules per family", () => {
    expect(argvs(planRouter([], client, "lattice0"))).toEqual(["ip -4 route replace 10.77.0.0/24 dev lattice0 table 52", ...RULES4, ...RULES6]);
  });

  it("selecting an exit node adds the throw routes before the default routes; clearing removes the routes before the throws, rules untouched", () => {
    const applied = planRouter([], client, "lattice0").map((s) => s.item);
    const exit: RouterConfig = { routes: ["10.77.0.0/24", "0.0.0.0/0", "::/0"], throws: ["10.66.0.1/32", "192.168.1.0/24"], forward: null };
    const on = planRouter(applied, exit, "lattice0");
    expect(argvs(on)).toEqual([
      "ip -4 route replace throw 10.66.0.1/32 table 52",
      "ip -4 route replace throw 192.168.1.0/24 table 52",
      "ip -4 route replace 0.0.0.0/0 dev lattice0 table 52",
      "ip -6 route replace ::/0 dev lattice0 table 52",
    ]);
    const after = [...applied, ...on.map((s) => s.item)];
    expect(argvs(planRouter(after, client, "lattice0"))).toEqual([
      "ip -6 route del ::/0 dev lattice0 table 52",
      "ip -4 route del 0.0.0.0/0 dev lattice0 table 52",
      "ip -4 route del throw 192.168.1.0/24 table 52",
      "ip -4 route del throw 10.66.0.1/32 table 52",
    ]);
    // The same config again: nothing to do.
    expect(planRouter(after, exit, "lattice0")).toEqual([]);
  });

  it("a prefix both routed and thrown is routed (an accepted subnet route wins over LAN access)", () => {
    expect(argvs(planRouter([], { routes: ["10.1.0.0/24"], throws: ["10.1.0.0/24"], forward: null }, "t0")).slice(0, 1)).toEqual(["ip -4 route replace 10.1.0.0/24 dev t0 table 52"]);
  });

  it("a subnet router: the forwarding chains jumped to from position 1, MASQUERADE of the mark; NoSNAT removes only that rule; down removes everything in reverse", () => {
    const router: RouterConfig = { routes: [], throws: [], forward: { snat: true } };
    const add = planRouter([], router, "lattice0");
    expect(argvs(add)).toEqual([
      ...RULES4,
      ...RULES6,
      "iptables -w -N lattice-forward",
      "iptables -w -A lattice-forward -i lattice0 -j MARK --set-mark 0x40000/0xff0000",
      "iptables -w -A lattice-forward -m mark --mark 0x40000/0xff0000 -j ACCEPT",
      "iptables -w -A lattice-forward -o lattice0 -s 100.64.0.0/10 -j DROP",
      "iptables -w -A lattice-forward -o lattice0 -j ACCEPT",
      "iptables -w -I FORWARD 1 -j lattice-forward",
      "ip6tables -w -N lattice-forward",
      "ip6tables -w -A lattice-forward -i lattice0 -j MARK --set-mark 0x40000/0xff0000",
      "ip6tables -w -A lattice-forward -m mark --mark 0x40000/0xff0000 -j ACCEPT",
      "ip6tables -w -A lattice-forward -o lattice0 -s fd7a:115c:a1e0::/48 -j DROP",
      "ip6tables -w -A lattice-forward -o lattice0 -j ACCEPT",
      "ip6tables -w -I FORWARD 1 -j lattice-forward",
      "iptables -w -t nat -N lattice-postrouting",
      "iptables -w -t nat -I POSTROUTING 1 -j lattice-postrouting",
      "ip6tables -w -t nat -N lattice-postrouting",
      "ip6tables -w -t nat -I POSTROUTING 1 -j lattice-postrouting",
      "iptables -w -t nat -A lattice-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",
      "ip6tables -w -t nat -A lattice-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",
    ]);
    const applied = add.map((s) => s.item);
    expect(argvs(planRouter(applied, { ...router, forward: { snat: false } }, "lattice0"))).toEqual([
      "ip6tables -w -t nat -D lattice-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",
      "iptables -w -t nat -D lattice-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",
    ]);
    expect(argvs(planRouter(applied, null, "lattice0"))).toEqual([
      "ip6tables -w -t nat -D lattice-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",
      "iptables -w -t nat -D lattice-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",
      "ip6tables -w -t nat -D POSTROUTING -j lattice-postrouting",
      "ip6tables -w -t nat -F lattice-postrouting",
      "ip6tables -w -t nat -X lattice-postrouting",
      "iptables -w -t nat -D POSTROUTING -j lattice-postrouting",
      "iptables -w -t nat -F lattice-postrouting",
      "iptables -w -t nat -X lattice-postrouting",
      "ip6tables -w -D FORWARD -j lattice-forward",
      "ip6tables -w -F lattice-forward",
      "ip6tables -w -X lattice-forward",
      "iptables -w -D FORWARD -j lattice-forward",
      "iptables -w -F lattice-forward",
      "iptables -w -X lattice-forward",
      "ip -6 rule del pref 5270 table 52",
      "ip -6 rule del pref 5250 fwmark 0x80000/0xff0000 type unreachable",
      "ip -6 rule del pref 5230 fwmark 0x80000/0xff0000 table default",
      "ip -6 rule del pref 5210 fwmark 0x80000/0xff0000 table main",
      "ip -4 rule del pref 5270 table 52",
      "ip -4 rule del pref 5250 fwmark 0x80000/0xff0000 type unreachable",
      "ip -4 rule del pref 5230 fwmark 0x80000/0xff0000 table default",
      "ip -4 rule del pref 5210 fwmark 0x80000/0xff0000 table main",
    ]);
  });

  it("crash cleanup: rules at our prefs (repeated), table 52 flushed, our chains unhooked (repeated), flushed and deleted, both families", () => {
    const c = cleanupCmds();
    const v4 = c.filter((x) => !x.v6).map((x) => `${x.repeat ? "*" : ""}${x.argv.join(" ")}`);
    expect(v4).toEqual([
      "*ip -4 rule del pref 5270",
      "*ip -4 rule del pref 5250",
      "*ip -4 rule del pref 5230",
      "*ip -4 rule del pref 5210",
      "ip -4 route flush table 52",
      "*iptables -w -D FORWARD -j lattice-forward",
      "iptables -w -F lattice-forward",
      "iptables -w -X lattice-forward",
      "*iptables -w -t nat -D POSTROUTING -j lattice-postrouting",
      "iptables -w -t nat -F lattice-postrouting",
      "iptables -w -t nat -X lattice-postrouting",
    ]);
    expect(c.filter((x) => x.v6)).toHaveLength(v4.length);
  });
});

describe("router executor", () => {
  it("IPv6 failures warn once and IPv4 keeps working; an IPv4 failure rejects router_setup but what got in is still removed later", async () => {
    const ran: string[] = [];
    const warns: string[] = [];
    let failV4 = "";
    const r = new Router({
      ifname: "lattice0",
      warn: (m) => void warns.push(m),
      run: async (argv) => {
        const line = argv.join(" ");
        ran.push(line);
        if (argv[1] === "-6" || argv[0] === "ip6tables") throw new Error("IPv6 is disabled");
        if (failV4 && line.includes(failV4)) throw new Error("RTNETLINK answers: File exists");
      },
    });
    await r.set(client);
    expect(ran.filter((l) => l.startsWith("ip -4"))).toEqual(["ip -4 route replace 10.77.0.0/24 dev lattice0 table 52", ...RULES4]);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatch(/IPv6 routing not set up \(IPv6 disabled\?\)/);
    failV4 = "10.9.0.0/24";
    const err = await r.set({ ...client, routes: [...client.routes, "10.9.0.0/24"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LatticedError);
    expect((err as LatticedError).code).toBe("router_setup");
    expect((err as Error).message).toContain("10.9.0.0/24");
    expect(r.applied).toContain("route4 10.9.0.0/24");
    ran.length = 0;
    await r.set(null);
    expect(ran).toContain("ip -4 route del 10.9.0.0/24 dev lattice0 table 52");
    expect(ran).toContain("ip -4 rule del pref 5210 fwmark 0x80000/0xff0000 table main");
    expect(r.applied).toEqual([]);
  });

  it("cleanup repeats a deletion until it fails (duplicate rules left by a crash) and never rejects", async () => {
    let left = 3;
    const ran: string[] = [];
    const r = new Router({
      ifname: "lattice0",
      warn: () => {},
      run: async (argv) => {
        const line = argv.join(" ");
        ran.push(line);
        if (line === "ip -4 rule del pref 5270" && left-- > 0) return;
        throw new Error("no such rule");
      },
    });
    await r.cleanup();
    expect(ran.filter((l) => l === "ip -4 rule del pref 5270")).toHaveLength(4);
    expect(ran).toContain("ip6tables -w -t nat -X lattice-postrouting");
  });

  it("repairRules re-adds only the policy rules someone deleted, only for families it manages", async () => {
    const ran: string[] = [];
    let shown4 = "0:\tfrom all lookup local\n5210:\tfrom all fwmark 0x80000/0xff0000 lookup main\n5230:\tfrom all fwmark 0x80000/0xff0000 lookup default\n32766:\tfrom all lookup main\n";
    const r = new Router({
      ifname: "lattice0",
      warn: () => {},
      run: async (argv) => {
        ran.push(argv.join(" "));
        if (argv[1] === "-6") throw new Error("IPv6 is disabled");
      },
      read: async (argv) => {
        if (argv[1] === "-6") throw new Error("IPv6 is disabled");
        return shown4;
      },
    });
    expect(await r.repairRules()).toEqual([]);
    await r.set(client);
    ran.length = 0;
    expect(await r.repairRules()).toEqual(["ip -4 rule add pref 5250 fwmark 0x80000/0xff0000 type unreachable", "ip -4 rule add pref 5270 table 52"]);
    expect(ran).toEqual(["ip -4 rule add pref 5250 fwmark 0x80000/0xff0000 type unreachable", "ip -4 rule add pref 5270 table 52"]);
    shown4 += "5250:\tfrom all fwmark 0x80000/0xff0000 unreachable\n5270:\tfrom all lookup 52\n";
    ran.length = 0;
    expect(await r.repairRules()).toEqual([]);
    expect(ran).toEqual([]);
  });
});
