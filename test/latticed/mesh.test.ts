// Two real latticed processes in two network namespaces on one LAN with a real
// lattice-control: both join with an auth key through the LocalAPI (POST /up), then ping
// each other's tailnet addresses through the tunnel, and GET /status shows the peer.
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { World, localApi, requireRoot, run, waitFor } from "./harness.js";

const peerCount = async (sock: string): Promise<number> => Object.keys((await localApi(sock, "GET", "/localapi/v0/status")).body.Peer ?? {}).length;

describe("latticed in network namespaces", () => {
  const w = new World();
  // Shared by the tests below, which run in order on one LAN.
  let ctl: Awaited<ReturnType<World["control"]>>;
  let key = "";
  let a: { ns: string; lanIp: string };
  let b: { ns: string; lanIp: string };
  let da: ReturnType<World["latticed"]>;
  let db: ReturnType<World["latticed"]>;
  let ipA = "";
  let ipB = "";
  afterAll(async () => {
    await w.cleanup();
  });

  it("two nodes join with an auth key over the LocalAPI, ping each other, and status lists the peer", async () => {
    requireRoot();
    w.lan();
    ctl = await w.control();
    ctl.admin("users", "create", "alice", "--password", "correct-horse-battery");
    key = ctl.admin("keys", "create", "--user", "alice", "--reusable", "--preapproved");
    expect(key).toMatch(/\S{16,}/);
    a = w.nodeNs("a");
    b = w.nodeNs("b");
    da = w.latticed("a", a.ns);
    db = w.latticed("b", b.ns);
    for (const d of [da, db]) {
      const st = await waitFor("LocalAPI up", 20_000, () => localApi(d.socket, "GET", "/localapi/v0/status").catch(() => null));
      expect(st.body.BackendState).toBe("NeedsLogin");
    }
    for (const [d, host] of [[da, "alpha"], [db, "beta"]] as const) {
      const up = await localApi(d.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: key, Hostname: host });
      expect(up.status, JSON.stringify(up.body)).toBe(200);
    }
    const statusWithPeer = (sock: string) =>
      waitFor("Running with one peer", 30_000, async () => {
        const s = await localApi(sock, "GET", "/localapi/v0/status");
        return s.body.BackendState === "Running" && Object.keys(s.body.Peer ?? {}).length === 1 ? s.body : null;
      });
    const sa = await statusWithPeer(da.socket);
    const sb = await statusWithPeer(db.socket);
    ipA = sa.TailscaleIPs[0] as string;
    ipB = sb.TailscaleIPs[0] as string;
    expect(ipA).toMatch(/^100\./);
    const peerOfA = Object.values(sa.Peer as Record<string, any>)[0];
    expect(peerOfA.HostName).toBe("beta");
    expect(peerOfA.TailscaleIPs).toContain(ipB);
    // ICMP through the tunnel, both directions (the kernel's ping over lattice0).
    const out = run("ip", ["netns", "exec", a.ns, "ping", "-c", "3", "-i", "0.3", "-W", "3", ipB]);
    expect(out).toMatch(/3 received/);
    expect(run("ip", ["netns", "exec", b.ns, "ping", "-c", "2", "-i", "0.3", "-W", "3", ipA])).toMatch(/2 received/);
    const after = await localApi(da.socket, "GET", "/localapi/v0/status");
    const p = Object.values(after.body.Peer as Record<string, any>)[0];
    expect(p.Online).toBe(true);
    expect(p.RxBytes).toBeGreaterThan(0);
    expect(p.TxBytes).toBeGreaterThan(0);
    expect(p.LastHandshake).not.toBe("0001-01-01T00:00:00Z");
    expect(p.Active).toBe(true);
    // The daemon's own ICMP ping and whois.
    const ping = await localApi(da.socket, "GET", `/localapi/v0/ping?ip=${ipB}&type=ICMP&timeout=3000`);
    expect(ping.status).toBe(200);
    expect(ping.body.Err, JSON.stringify(ping.body)).toBeUndefined();
    expect(ping.body.LatencySeconds).toBeGreaterThan(0);
    const who = await localApi(da.socket, "GET", `/localapi/v0/whois?addr=${ipB}:22`);
    expect(who.body.Node.Name).toMatch(/^beta\./);
    expect(who.body.UserProfile.LoginName).toMatch(/^alice/);
  }, 120_000);

  it("the packet filter: only A→B:22 allowed — A's SYN to 22 passes, to 80 is dropped, B→A ping is dropped and counted; a policy change applies within 2 s", async () => {
    requireRoot();
    const dir = w.dir;
    const policyFile = path.join(dir, "policy.hujson");
    fs.writeFileSync(policyFile, JSON.stringify({ acls: [{ action: "accept", src: [ipA], dst: [`${ipB}:22`] }] }));
    ctl.admin("policy", "set", policyFile);
    // TCP from A: port 22 reaches B's kernel (nothing listens: refused), port 80 never does (timeout).
    const tcp = (port: number) => run("ip", ["netns", "exec", a.ns, process.execPath, "-e", `const s=require("net").connect(${port},"${ipB}");s.setTimeout(1500,()=>{console.log("timeout");process.exit(0)});s.on("connect",()=>{console.log("open");process.exit(0)});s.on("error",e=>{console.log(e.code);process.exit(0)})`]).trim();
    await waitFor("policy applied at B (A→B:80 filtered)", 10_000, () => tcp(80) === "timeout");
    expect(tcp(22)).toBe("ECONNREFUSED");
    // ICMP A→B is allowed (a rule between the two addresses), B→A is not.
    expect(run("ip", ["netns", "exec", a.ns, "ping", "-c", "1", "-W", "2", ipB])).toMatch(/1 received/);
    expect(() => run("ip", ["netns", "exec", b.ns, "ping", "-c", "2", "-i", "0.3", "-W", "1", ipA])).toThrow(/100% packet loss/);
    const metrics = (await localApi(da.socket, "GET", "/localapi/v0/metrics")).body as string;
    const m = /latticed_filter_packets_total\{direction="in",verdict="drop",reason="no-rule"\} (\d+)/.exec(metrics);
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(2);
    // A policy change reaches the node and its filter within 2 s.
    fs.writeFileSync(policyFile, JSON.stringify({ acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }] }));
    ctl.admin("policy", "set", policyFile);
    await waitFor("B→A ping allowed", 3_000, () => {
      try {
        return /1 received/.test(run("ip", ["netns", "exec", b.ns, "ping", "-c", "1", "-W", "1", ipA]));
      } catch {
        return false;
      }
    });
  }, 120_000);

  it("kill -9 + restart with control down: Running at once from the saved state, tunnel works; control back: reconnects", async () => {
    requireRoot();
    await World.stop(ctl.proc);
    await World.stop(da.proc, "SIGKILL");
    da = w.latticed("a", a.ns);
    const st = await waitFor("LocalAPI back", 20_000, () => localApi(da.socket, "GET", "/localapi/v0/status").catch(() => null));
    expect(st.body.BackendState).toBe("Running");
    expect(Object.keys(st.body.Peer)).toHaveLength(1);
    await waitFor("Health says control is unreachable", 10_000, async () => (await localApi(da.socket, "GET", "/localapi/v0/status")).body.Health.some((h: string) => /not connected to the control server/.test(h)));
    expect(run("ip", ["netns", "exec", a.ns, "ping", "-c", "2", "-i", "0.3", "-W", "3", ipB])).toMatch(/2 received/);
    ctl = await w.control("control2");
    await waitFor("reconnected (Health clear)", 45_000, async () => (await localApi(da.socket, "GET", "/localapi/v0/status")).body.Health.length === 0);
  }, 120_000);

  it("an expired node key drops every peer and says so; up --force-reauth restores it", async () => {
    requireRoot();
    ctl.admin("nodes", "expire", "alpha");
    const st = await waitFor("alpha NeedsLogin", 20_000, async () => {
      const s = (await localApi(da.socket, "GET", "/localapi/v0/status")).body;
      return s.BackendState === "NeedsLogin" ? s : null;
    });
    expect(st.Health).toContain('node key expired; run "lattice up --force-reauth"');
    expect(Object.keys(st.Peer)).toHaveLength(0);
    expect(() => run("ip", ["netns", "exec", a.ns, "ping", "-c", "1", "-W", "1", ipB])).toThrow();
    const up = await localApi(da.socket, "POST", "/localapi/v0/up", { ForceReauth: true, AuthKey: key });
    expect(up.status, JSON.stringify(up.body)).toBe(200);
    await waitFor("alpha Running with its peer again", 30_000, async () => (await localApi(da.socket, "GET", "/localapi/v0/status")).body.BackendState === "Running" && (await peerCount(da.socket)) === 1);
    ipA = (await localApi(da.socket, "GET", "/localapi/v0/status")).body.TailscaleIPs[0];
    await waitFor("tunnel back", 10_000, () => /1 received/.test(run("ip", ["netns", "exec", a.ns, "ping", "-c", "1", "-W", "2", ipB])));
  }, 120_000);

  it("an ephemeral node vanishes from its peers within 10 s of down; logout goes to NeedsLogin", async () => {
    requireRoot();
    const eph = ctl.admin("keys", "create", "--user", "alice", "--ephemeral", "--preapproved");
    const c = w.nodeNs("c");
    const dc = w.latticed("c", c.ns);
    await waitFor("LocalAPI c", 20_000, () => localApi(dc.socket, "GET", "/localapi/v0/status").catch(() => null));
    const upc = await localApi(dc.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: eph, Hostname: "gamma" });
    expect(upc.status, JSON.stringify(upc.body)).toBe(200);
    await waitFor("b sees c", 30_000, async () => (await peerCount(db.socket)) === 2);
    await waitFor("c running", 30_000, async () => (await localApi(dc.socket, "GET", "/localapi/v0/status")).body.BackendState === "Running");
    expect((await localApi(dc.socket, "GET", "/localapi/v0/prefs")).body.Ephemeral).toBe(true);
    const t0 = Date.now();
    expect((await localApi(dc.socket, "POST", "/localapi/v0/down")).status).toBe(200);
    await waitFor("c gone from b", 10_000, async () => (await peerCount(db.socket)) === 1);
    expect(Date.now() - t0).toBeLessThan(10_000);
    // Logout of a regular node: the key is expired at control; the node is NeedsLogin, and
    // its peers see it Expired (as in Tailscale) and take it out of their WireGuard device.
    const lo = await localApi(db.socket, "POST", "/localapi/v0/logout");
    expect(lo.status, JSON.stringify(lo.body)).toBe(200);
    expect((await localApi(db.socket, "GET", "/localapi/v0/status")).body.BackendState).toBe("NeedsLogin");
    const gone = await waitFor("a sees b expired", 15_000, async () => {
      const p = Object.values((await localApi(da.socket, "GET", "/localapi/v0/status")).body.Peer as Record<string, any>)[0];
      return p?.Expired === true ? p : null;
    });
    expect(gone.InEngine).toBe(false);
    expect(() => run("ip", ["netns", "exec", a.ns, "ping", "-c", "1", "-W", "1", ipB])).toThrow();
  }, 120_000);

  it("SIGTERM: latticed exits 0, removes its socket, and the TUN with its routes is gone", async () => {
    requireRoot();
    expect(run("ip", ["-n", a.ns, "route", "show", "dev", "lattice0"])).toMatch(/100\.64\.0\.0\/10/);
    const exited = new Promise<number | null>((r) => da.proc.once("exit", (code) => r(code)));
    da.proc.kill("SIGTERM");
    // `ip netns exec` passes the daemon's exit status through.
    expect(await exited).toBe(0);
    expect(fs.existsSync(da.socket)).toBe(false);
    expect(() => run("ip", ["-n", a.ns, "link", "show", "lattice0"])).toThrow(/does not exist/);
    expect(run("ip", ["-n", a.ns, "route", "show"])).not.toMatch(/100\.64\.0\.0/);
  }, 60_000);
});
