// Subnet router and exit node through real latticed processes (LocalAPI only; the CLI-driven
// acceptance tests live in test/e2e). Namespaces "ltd-routes-*-<id>":
//   control LAN 10.66.0.0/24: lattice-control (.1), A "alpha", R "router", E "exit"
//   R's LAN 10.77.0.0/24: R 10.77.0.1, H 10.77.0.5 (default route via R)
//   E's uplink 198.51.100.0/24: E .1, I .10 (no default route: only E reaches it)
// H and I run an HTTP server answering with the client's address as they see it.
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { World, localApi, requireRoot, run, waitFor } from "./harness.js";

const ECHO_SERVER = `require("node:http").createServer((q, s) => s.end(q.socket.remoteAddress.replace(/^::ffff:/, ""))).listen(0, "::", function () { console.log("PORT " + this.address().port); });`;

describe("latticed subnet router and exit node (netns)", () => {
  const w = new World("10.66.0");
  afterAll(async () => {
    await w.cleanup();
  });

  /** An extra namespace linked to `via` by a veth pair (`viaIf` there, eth0 inside). */
  function stub(role: string, via: string, viaIf: string, viaIp: string, ip: string, gw: boolean): string {
    const ns = w.ns(role);
    run("ip", ["netns", "add", ns]);
    w.namespaces.push(ns);
    run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    run("ip", ["-n", via, "link", "add", viaIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    run("ip", ["-n", via, "addr", "add", `${viaIp}/24`, "dev", viaIf]);
    run("ip", ["-n", via, "link", "set", viaIf, "up"]);
    run("ip", ["-n", ns, "addr", "add", `${ip}/24`, "dev", "eth0"]);
    run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    if (gw) run("ip", ["-n", ns, "route", "add", "default", "via", viaIp]);
    return ns;
  }

  async function echoServer(name: string, ns: string): Promise<number> {
    w.spawn(name, ns, [process.execPath, "-e", ECHO_SERVER]);
    const m = await waitFor(`${name} listening`, 10_000, () => /PORT (\d+)/.exec(w.log(name)));
    return Number(m[1]);
  }

  /** What the server at url says our address is, or "" when unreachable. */
  function curl(ns: string, url: string): string {
    try {
      return run("ip", ["netns", "exec", ns, "curl", "-s", "--max-time", "2", url]).trim();
    } catch {
      return "";
    }
  }

  /** `ip route show table all` (both families) and `ip -4/-6 rule` of a namespace. */
  const routing = (ns: string): string =>
    [["-4", "route", "show", "table", "all"], ["-6", "route", "show", "table", "all"], ["-4", "rule"], ["-6", "rule"]].map((args) => run("ip", ["-n", ns, ...args])).join("\n--\n");

  it("A reaches R's LAN only after approval with RouteAll (SNAT, then NoSNAT); A's traffic exits through E; clearing the exit node restores A's routes and rules byte-for-byte; R recovers from kill -9; shutdown and down remove everything", async () => {
    requireRoot();
    w.lan();
    const ctl = await w.control();
    ctl.admin("users", "create", "alice", "--password", "correct-horse-battery");
    const key = ctl.admin("keys", "create", "--user", "alice", "--reusable", "--preapproved");
    const a = w.nodeNs("routes-a");
    const r = w.nodeNs("routes-r");
    const e = w.nodeNs("routes-e");
    const h = stub("routes-h", r.ns, "lan1", "10.77.0.1", "10.77.0.5", true);
    const i = stub("routes-i", e.ns, "wan1", "198.51.100.1", "198.51.100.10", false);
    // I has IPv6 too (2001:db8:51::/64, only E on it): ::/0 through E with ip6tables MASQUERADE.
    run("ip", ["-n", e.ns, "-6", "addr", "add", "2001:db8:51::1/64", "dev", "wan1", "nodad"]);
    run("ip", ["-n", i, "-6", "addr", "add", "2001:db8:51::10/64", "dev", "eth0", "nodad"]);
    for (const ns of [r.ns, e.ns]) run("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    const hPort = await echoServer("h-http", h);
    const iPort = await echoServer("i-http", i);

    const da = w.latticed("routes-a", a.ns);
    let dr = w.latticed("routes-r", r.ns);
    const de = w.latticed("routes-e", e.ns);
    for (const d of [da, dr, de]) await waitFor("LocalAPI", 20_000, () => localApi(d.socket, "GET", "/localapi/v0/status").catch(() => null));
    const ups: [typeof da, object][] = [
      [da, { Hostname: "alpha" }],
      [dr, { Hostname: "router", AdvertiseRoutes: ["10.77.0.0/24"] }],
      [de, { Hostname: "exit", AdvertiseRoutes: ["0.0.0.0/0", "::/0"] }],
    ];
    for (const [d, extra] of ups) {
      const up = await localApi(d.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: key, ...extra });
      expect(up.status, JSON.stringify(up.body)).toBe(200);
    }
    const running = (sock: string) =>
      waitFor("Running with two peers", 30_000, async () => {
        const s = (await localApi(sock, "GET", "/localapi/v0/status")).body;
        return s.BackendState === "Running" && Object.keys(s.Peer ?? {}).length === 2 ? s : null;
      });
    const sa = await running(da.socket);
    const ipA = sa.TailscaleIPs[0] as string;
    const ipE = ((await running(de.socket)).TailscaleIPs as string[])[0]!;
    const ipR = ((await running(dr.socket)).TailscaleIPs as string[])[0]!;

    // latticed's UDP socket carries the bypass mark (rule 5210: never into table 52).
    expect(run("ip", ["netns", "exec", a.ns, "ss", "-uaneH", "sport", "=", ":41641"])).toContain("fwmark:0x80000");
    // Forwarding is on in R: no Health line; a peer that is no exit node cannot be chosen.
    expect((await localApi(dr.socket, "GET", "/localapi/v0/status")).body.Health.join("\n")).not.toContain("IP forwarding is disabled");
    const notExit = await localApi(da.socket, "PATCH", "/localapi/v0/prefs", { ExitNodeIP: ipR });
    expect(notExit.status).toBe(400);
    expect(notExit.body.error).toBe(`ExitNodeIP: ${ipR} is not a peer offering an exit node`);

    // Subnet route: RouteAll on, but not approved yet → H unreachable.
    expect((await localApi(da.socket, "PATCH", "/localapi/v0/prefs", { RouteAll: true })).status).toBe(200);
    const hUrl = `http://10.77.0.5:${hPort}/`;
    expect(curl(a.ns, hUrl)).toBe("");
    ctl.admin("nodes", "approve-routes", "router", "10.77.0.0/24");
    await waitFor("A learns R's route", 10_000, async () => {
      const s = (await localApi(da.socket, "GET", "/localapi/v0/status")).body;
      return Object.values(s.Peer as Record<string, any>).some((p) => p.HostName === "router" && p.PrimaryRoutes?.includes("10.77.0.0/24"));
    });
    expect(await waitFor("H reached through R (SNAT)", 10_000, () => curl(a.ns, hUrl))).toBe("10.77.0.1");
    expect(run("ip", ["-n", a.ns, "route", "show", "table", "52"])).toContain("10.77.0.0/24 dev lattice0");
    // NoSNAT: H sees A's tailnet address.
    expect((await localApi(dr.socket, "PATCH", "/localapi/v0/prefs", { NoSNAT: true })).status).toBe(200);
    expect(await waitFor("H sees A's address", 10_000, () => (curl(a.ns, hUrl) === ipA ? ipA : null))).toBe(ipA);
    // The policy is enforced at the router: with only H:22 allowed, R's filter drops A→H:http.
    const policyFile = path.join(w.dir, "policy.json");
    const policy = (dst: string[]) => {
      fs.writeFileSync(policyFile, JSON.stringify({ acls: [{ action: "accept", src: ["*"], dst }] }));
      ctl.admin("policy", "set", policyFile);
    };
    const rDrops = async () => Number(/latticed_filter_packets_total\{direction="in",verdict="drop",reason="no-rule"\} (\d+)/.exec((await localApi(dr.socket, "GET", "/localapi/v0/metrics")).body)?.[1] ?? 0);
    const drops0 = await rDrops();
    policy(["100.64.0.0/10:*", "10.77.0.5:22"]);
    await waitFor("R drops A→H:http", 10_000, () => curl(a.ns, hUrl) === "");
    expect(await rDrops()).toBeGreaterThan(drops0);
    policy(["*:*"]);
    await waitFor("H reachable again", 10_000, () => curl(a.ns, hUrl) === ipA);

    // Exit node.
    const before = routing(a.ns);
    const iUrl = `http://198.51.100.10:${iPort}/`;
    expect(curl(a.ns, iUrl)).toBe("");
    ctl.admin("nodes", "approve-routes", "exit", "0.0.0.0/0");
    const exitPeer = await waitFor("A sees E as an exit node option", 10_000, async () => {
      const s = (await localApi(da.socket, "GET", "/localapi/v0/status")).body;
      return Object.values(s.Peer as Record<string, any>).find((p) => p.HostName === "exit" && p.ExitNodeOption);
    });
    const sug = await localApi(da.socket, "GET", "/localapi/v0/suggest-exit-node");
    expect(sug.status).toBe(200);
    expect(sug.body).toEqual({ ID: exitPeer.ID, Name: exitPeer.DNSName, Location: null });
    const set = await localApi(da.socket, "PATCH", "/localapi/v0/prefs", { ExitNodeIP: ipE });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body.ExitNodeID).toBe(exitPeer.ID);
    expect(await waitFor("I reached through E", 10_000, () => curl(a.ns, iUrl))).toBe("198.51.100.1");
    expect(curl(a.ns, `http://[2001:db8:51::10]:${iPort}/`)).toBe("2001:db8:51::1");
    const st = (await localApi(da.socket, "GET", "/localapi/v0/status")).body;
    expect(st.ExitNodeStatus).toMatchObject({ ID: exitPeer.ID, Online: true });
    expect(Object.values(st.Peer as Record<string, any>).find((p) => p.HostName === "exit").ExitNode).toBe(true);
    // The control server stays reachable around the default route (throw route), and so does H.
    expect(run("ip", ["-n", a.ns, "route", "show", "table", "52"])).toContain("throw 10.66.0.1");
    expect(run("ip", ["netns", "exec", a.ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", `${ctl.url}/key?v=100`])).toBe("200");
    expect(curl(a.ns, hUrl)).toBe(ipA);
    // A rule deleted by someone else (systemd-networkd does that) is back within 5 s.
    run("ip", ["-n", a.ns, "-4", "rule", "del", "pref", "5270"]);
    await waitFor("rule 5270 re-added", 10_000, () => /^5270:/m.test(run("ip", ["-n", a.ns, "-4", "rule"])));
    // The LAN: through E (E's LAN address after its MASQUERADE) unless LAN access is allowed.
    const ctlNs = w.ns("ctl");
    run("ip", ["-n", ctlNs, "addr", "add", "10.66.0.2/24", "dev", "br0"]);
    const lanUrl = `http://10.66.0.2:${await echoServer("lan-http", ctlNs)}/`;
    expect(await waitFor("LAN host via E", 10_000, () => curl(a.ns, lanUrl))).toBe(e.lanIp);
    expect((await localApi(da.socket, "PATCH", "/localapi/v0/prefs", { ExitNodeAllowLANAccess: true })).status).toBe(200);
    expect(await waitFor("LAN host directly", 10_000, () => (curl(a.ns, lanUrl) === a.lanIp ? a.lanIp : null))).toBe(a.lanIp);
    expect(run("ip", ["-n", a.ns, "route", "show", "table", "52"])).toContain("throw 10.66.0.0/24");
    expect(curl(a.ns, iUrl)).toBe("198.51.100.1");
    // Clearing restores A's routing tables and rules exactly.
    expect((await localApi(da.socket, "PATCH", "/localapi/v0/prefs", { ExitNodeIP: "" })).body.ExitNodeID).toBe("");
    await waitFor("routes restored", 5_000, () => routing(a.ns) === before).catch(() => undefined);
    expect(routing(a.ns)).toBe(before);
    expect(curl(a.ns, iUrl)).toBe("");

    // Crash recovery: kill -9 leaves R's rules and chains; the next latticed starts clean.
    await World.stop(dr.proc, "SIGKILL");
    expect(run("ip", ["-n", r.ns, "-4", "rule"])).toContain("5270:");
    expect(run("ip", ["netns", "exec", r.ns, "iptables", "-S", "FORWARD"])).toContain("lattice-forward");
    fs.appendFileSync(path.join(w.dir, "routes-r.log"), "\n--- restart ---\n");
    dr = w.latticed("routes-r", r.ns);
    await running(dr.socket);
    await waitFor("R's chains back", 10_000, () => run("ip", ["netns", "exec", r.ns, "iptables", "-S", "FORWARD"]).includes("lattice-forward"));
    expect(run("ip", ["-n", r.ns, "-4", "rule"]).match(/^5270:/gm)).toHaveLength(1);
    expect(run("ip", ["netns", "exec", r.ns, "iptables", "-S", "FORWARD"]).match(/lattice-forward/g)).toHaveLength(1);
    // A's WireGuard session with the old R is dead: A handshakes again after 15 s at most
    // (keepalive + rekey timeout), as WireGuard does after a peer restart.
    expect(await waitFor("H reached after R's restart", 30_000, () => curl(a.ns, hUrl))).toBe(ipA);
    // Shutdown removes everything of ours.
    await World.stop(dr.proc);
    expect(run("ip", ["-n", r.ns, "-4", "rule"])).not.toMatch(/^52\d0:/m);
    expect(run("ip", ["-n", r.ns, "route", "show", "table", "all"])).not.toContain("table 52");
    expect(run("ip", ["netns", "exec", r.ns, "iptables", "-S"])).not.toContain("lattice-");
    expect(run("ip", ["netns", "exec", r.ns, "iptables", "-t", "nat", "-S"])).not.toContain("lattice-");
    // So does `down` (A: rules and table 52 gone while the daemon keeps running).
    expect((await localApi(da.socket, "POST", "/localapi/v0/down")).status).toBe(200);
    await waitFor("A's rules removed", 5_000, () => !/^52\d0:/m.test(run("ip", ["-n", a.ns, "-4", "rule"])));
    expect(run("ip", ["-n", a.ns, "-6", "rule"])).not.toMatch(/^52\d0:/m);
    expect(run("ip", ["-n", a.ns, "route", "show", "table", "all"])).not.toContain("table 52");
  }, 120_000);
});
