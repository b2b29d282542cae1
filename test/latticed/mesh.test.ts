// Two real latticed processes in two network namespaces on one LAN with a real
// lattice-control: both join with an auth key through the LocalAPI (POST /up), then ping
// each other's tailnet addresses through the tunnel, and GET /status shows the peer.
import { afterAll, describe, expect, it } from "vitest";
import { World, localApi, requireRoot, run, waitFor } from "./harness.js";

describe("latticed in network namespaces", () => {
  const w = new World();
  afterAll(async () => {
    await w.cleanup();
  });

  it("two nodes join with an auth key over the LocalAPI, ping each other, and status lists the peer", async () => {
    requireRoot();
    w.lan();
    const ctl = await w.control();
    ctl.admin("users", "create", "alice", "--password", "correct-horse-battery");
    const key = ctl.admin("keys", "create", "--user", "alice", "--reusable", "--preapproved");
    expect(key).toMatch(/\S{16,}/);
    const a = w.nodeNs("a");
    const b = w.nodeNs("b");
    const da = w.latticed("a", a.ns);
    const db = w.latticed("b", b.ns);
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
    const ipA = sa.TailscaleIPs[0] as string;
    const ipB = sb.TailscaleIPs[0] as string;
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
});
