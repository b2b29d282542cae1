/**
 * Issue 6 A14 (Hostinfo amplification), through the real Noise control channel against
 * the real server process: Hostinfo is size-capped (413 hostinfo_too_large), a node's
 * Hostinfo changes reach its peers at most once per `hostinfoMinInterval` after a small
 * burst (the last one always arrives), and peers get only the Hostinfo fields clients read.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hostinfo, MapRequest, MapResponse, Node } from "@lattice/types";
import { startServer, TestNode, type ServerProc } from "./harness.js";
import { floodHostinfo, hostinfoFlood } from "./hostile/hostinfo-flood.js";
import { paddedHostinfo } from "./hostile/registration-flood.js";
import { storedHostinfo } from "./hostile/db-probe.js";

const ALLOW_ALL = `{ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ] }`;

/** Collects a stream's messages in the background. */
function collect(n: TestNode, extra: Partial<MapRequest> = {}): { messages: MapResponse[]; close(): void } {
  const st = n.map({ KeepAlive: true, ...extra });
  const messages: MapResponse[] = [];
  void (async () => {
    try {
      for await (const m of st) messages.push(m);
    } catch {
      /* closed */
    }
  })();
  return { messages, close: () => st.close() };
}

async function until<T>(fn: () => T | undefined, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every version of peer `id` a stream received (full map Peers and PeersChanged), in order. */
function peerVersions(messages: readonly MapResponse[], id: number): Node[] {
  const out: Node[] = [];
  for (const m of messages) for (const p of [...(m.Peers ?? []), ...(m.PeersChanged ?? [])]) if (p.ID === id) out.push(p);
  return out;
}

describe("Hostinfo limits (issue 6 A14)", () => {
  let s: ServerProc;
  let authKey: string;
  const nodes: TestNode[] = [];
  const join = async (host: string, hostinfo?: Hostinfo) => {
    const n = await new TestNode(s.url, host).connect();
    nodes.push(n);
    const reg = await n.register({ Auth: { AuthKey: authKey }, ...(hostinfo ? { Hostinfo: hostinfo } : {}) });
    expect(reg.MachineAuthorized).toBe(true);
    return n;
  };
  /**
   * Joins `talker` and `listener`, streams both, and waits until the listener's stream holds
   * the talker as a peer; `seenBefore` is how many peer versions of it the listener had then.
   */
  const joinPair = async (talker: string, listener: string) => {
    const a = await join(talker);
    const b = await join(listener);
    const sa = collect(a);
    const sb = collect(b);
    const aId = (await until(() => sa.messages[0], 5000)).Node!.ID;
    await until(() => (peerVersions(sb.messages, aId).length > 0 ? true : undefined), 5000);
    const seenBefore = peerVersions(sb.messages, aId).length;
    return { a, sb, aId, seenBefore, close: () => (sa.close(), sb.close()) };
  };

  beforeAll(async () => {
    s = await startServer({ env: { LATTICE_CONTROL_HOSTINFO_MIN_INTERVAL: "1s" } });
    expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
    authKey = (await s.cli(["keys", "create", "--user", "alice", "--reusable", "--preapproved"])).stdout.trim();
    const apiKey = (await s.cli(["apikeys", "create"])).stdout.trim();
    expect((await s.api("PUT", "/policy", { policy: ALLOW_ALL }, apiKey)).status).toBe(200);
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("a Hostinfo over maxHostinfoBytes is refused with 413 hostinfo_too_large, in map and register requests", async () => {
    const a = await join("big-a");
    const r = await hostinfoFlood({ client: a.client, nodeKey: a.nodeKey, discoKey: a.discoKey, hostname: "big-a" }, { requests: 4, hostinfoBytes: 240 * 1024 });
    expect(r.refused).toEqual({ hostinfo_too_large: 4 });
    const small = await hostinfoFlood({ client: a.client, nodeKey: a.nodeKey, discoKey: a.discoKey, hostname: "big-a" }, { requests: 1, hostinfoBytes: 8 * 1024 });
    expect(small.accepted).toBe(1);
    const b = await new TestNode(s.url, "big-b").connect();
    nodes.push(b);
    await expect(b.register({ Auth: { AuthKey: authKey }, Hostinfo: paddedHostinfo("big-b", 20 * 1024) })).rejects.toMatchObject({
      status: 413,
      code: "hostinfo_too_large",
      message: expect.stringMatching(/exceeds the limit of 16384 bytes \(setting maxHostinfoBytes\)/),
    });
  });

  it("peers get only the Hostinfo fields clients read (Hostname, OS, peerapi services, SSH host keys, Location …)", async () => {
    const rich: Hostinfo = {
      Hostname: "rich",
      OS: "linux",
      OSVersion: "6.1.0-18-amd64",
      IPNVersion: "1.80.0-t1234",
      BackendLogID: "0123456789abcdef",
      PushDeviceToken: "secret-token",
      Distro: "debian",
      Services: [
        { Proto: "tcp", Port: 22, Description: "sshd" },
        { Proto: "peerapi4", Port: 51234 },
        { Proto: "peerapi6", Port: 51235 },
      ],
      NetInfo: { PreferredDERP: 1, DERPLatency: { "1-v4": 0.01 } },
      sshHostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"],
      Location: { Country: "Canada", CountryCode: "CA", City: "Squamish", CityCode: "YSE" },
      RequestTags: [],
    };
    const a = await join("rich", rich);
    const b = await join("viewer");
    const sa = collect(a, { Hostinfo: rich }); // the map request's Hostinfo is what the server stores
    const sb = collect(b);
    try {
      const aId = (await until(() => sa.messages[0], 5000)).Node!.ID;
      const seen = await until(() => peerVersions(sb.messages, aId).find((p) => p.Hostinfo?.OSVersion === undefined && p.Hostinfo?.Services !== undefined), 5000);
      expect(seen.Hostinfo).toEqual({
        Hostname: "rich",
        OS: "linux",
        Services: [
          { Proto: "peerapi4", Port: 51234 },
          { Proto: "peerapi6", Port: 51235 },
        ],
        sshHostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"],
        Location: { Country: "Canada", CountryCode: "CA", City: "Squamish", CityCode: "YSE" },
      });
      expect(JSON.stringify(sb.messages)).not.toContain("secret-token");
      // The server keeps the whole Hostinfo for itself (the admin CLI, advertised routes).
      expect(peerVersions(sb.messages, aId).every((p) => p.Hostinfo?.NetInfo === undefined)).toBe(true);
    } finally {
      sa.close();
      sb.close();
    }
  });

  it("Hostinfo changes reach peers at most once per hostinfoMinInterval after a burst of 3, and the last change arrives", async () => {
    const { a, sb, aId, seenBefore, close } = await joinPair("chatty", "listener");
    try {
      const t0 = Date.now();
      const r = await hostinfoFlood({ client: a.client, nodeKey: a.nodeKey, discoKey: a.discoKey, hostname: "chatty" }, { requests: 40, hostinfoBytes: 2048 });
      const elapsed = Date.now() - t0;
      expect(r.accepted).toBe(40);
      // The last change lands (held back, then applied) ...
      const lastKey = floodHostinfo("chatty", 39, 10)!.sshHostKeys![0];
      await until(() => peerVersions(sb.messages, aId).find((p) => p.Hostinfo?.sshHostKeys?.[0] === lastKey), 10_000);
      const updates = peerVersions(sb.messages, aId).length - seenBefore;
      // ... after at most a burst of 3, one update per elapsed interval (1 s) and the held one.
      const bound = 3 + Math.floor(elapsed / 1000) + 1;
      console.log(`40 Hostinfo changes in ${elapsed} ms reached the peer as ${updates} updates (bound ${bound})`);
      expect(updates).toBeLessThanOrEqual(bound);
      expect(updates).toBeLessThan(40);
    } finally {
      close();
    }
  });

  it("a Hostinfo change in fields peers do not get is stored but not re-sent to peers", async () => {
    const { a, sb, aId, seenBefore, close } = await joinPair("quiet", "quiet-peer");
    try {
      const lite = (v: string) =>
        a.client.map({ Version: 100, NodeKey: a.nodeKey, DiscoKey: a.discoKey, Stream: false, OmitPeers: true, Endpoints: ["192.0.2.1:41641"], Hostinfo: { Hostname: "quiet", OS: "linux", OSVersion: v, IPNVersion: v } })[Symbol.asyncIterator]().next();
      for (let i = 0; i < 3; i++) await lite(`private-${i}`);
      await until(() => (storedHostinfo(s.db, "quiet")?.OSVersion === "private-2" ? true : undefined), 5000);
      // A peer-visible change afterwards arrives, so the peer stream was live all along.
      await new Promise((r) => setTimeout(r, 1100));
      await a.client.map({ Version: 100, NodeKey: a.nodeKey, DiscoKey: a.discoKey, Stream: false, OmitPeers: true, Endpoints: ["192.0.2.1:41641"], Hostinfo: { Hostname: "quiet", OS: "plan9" } })[Symbol.asyncIterator]().next();
      await until(() => peerVersions(sb.messages, aId).find((p) => p.Hostinfo?.OS === "plan9"), 5000);
      expect(peerVersions(sb.messages, aId).length - seenBefore).toBe(1);
    } finally {
      close();
    }
  });

  it("Hostinfo opt.Bool fields take Tailscale's JSON forms (true/false/null), are stored as booleans, and refuse anything else", async () => {
    // Tailscale's opt.Bool marshals as JSON true/false/null (types/opt/bool.go), never a string.
    const optBools = { Userspace: true, UserspaceRouter: false, Container: null, AppConnector: true, Desktop: false, NetInfo: { WorkingUDP: true, UPnP: false, PMP: null } };
    const a = await new TestNode(s.url, "optbool").connect();
    nodes.push(a);
    const reg = await a.register({ Auth: { AuthKey: authKey }, Hostinfo: { Hostname: "optbool", OS: "linux", ...optBools } as unknown as Hostinfo });
    expect(reg.MachineAuthorized).toBe(true);
    const stored = storedHostinfo(s.db, "optbool");
    expect(stored).toMatchObject({ Userspace: true, UserspaceRouter: false, AppConnector: true, Desktop: false, NetInfo: { WorkingUDP: true, UPnP: false } });
    expect(stored).not.toHaveProperty("Container");
    expect(stored?.NetInfo).not.toHaveProperty("PMP");
    // The map request path (what the server stores from then on) takes them too.
    const mapOnce = (h: Record<string, unknown>) =>
      a.client.map({ Version: 100, NodeKey: a.nodeKey, DiscoKey: a.discoKey, Stream: false, OmitPeers: true, Endpoints: ["192.0.2.1:41641"], Hostinfo: { Hostname: "optbool", OS: "linux", ...h } as unknown as Hostinfo })[Symbol.asyncIterator]().next();
    await mapOnce({ Userspace: false, StateEncrypted: true });
    await until(() => (storedHostinfo(s.db, "optbool")?.StateEncrypted === true ? true : undefined), 5000);
    expect(storedHostinfo(s.db, "optbool")?.Userspace).toBe(false);
    // Strings and other types are not opt.Bool's JSON: refused naming the field.
    for (const bad of ["true", "", 1, {}]) {
      await expect(mapOnce({ Userspace: bad })).rejects.toMatchObject({ status: 400, message: expect.stringContaining("Hostinfo.Userspace") });
      const b = await new TestNode(s.url, "optbool-bad").connect();
      nodes.push(b);
      await expect(b.register({ Auth: { AuthKey: authKey }, Hostinfo: { Hostname: "optbool-bad", OS: "linux", NetInfo: { WorkingUDP: bad } } as unknown as Hostinfo })).rejects.toMatchObject({
        status: 400,
        message: expect.stringContaining("Hostinfo.NetInfo.WorkingUDP"),
      });
    }
  });
});
