// The local backend's state machine against a fake control server, engine and magicsock:
// login with an auth key and interactively, awaiting approval, full + delta netmaps into
// the engine, key expiry, force-reauth, down, logout, ephemeral logout, and a restart
// from the saved netmap while control is unreachable.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import { x25519PublicKey } from "@lattice/crypto";
import { formatKey, type MapResponse, type Node } from "@lattice/types";
import { ControlError } from "@lattice/control-client";
import { LocalBackend, LOGOUT_EXPIRY, type SshHook } from "../../src/latticed/backend.js";
import type { Netmap } from "../../src/latticed/netmap.js";
import { StateDir } from "../../src/latticed/state.js";
import { FakeControl, OK_REGISTER, refused } from "./fake-control.js";
import type { RouteSelection } from "../../src/latticed/routes.js";
import type { BackendDeps } from "../../src/latticed/backend.js";
import type { Prefs } from "../../src/latticed/prefs.js";

const random = (n: number) => new Uint8Array(randomBytes(n));
const dirs: string[] = [];
const backends: LocalBackend[] = [];
afterEach(async () => {
  for (const b of backends.splice(0)) await b.shutdown(100);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function fakeEngine() {
  const e = {
    configured: [] as Array<{ peers: number[]; key: string; routes?: RouteSelection }>,
    clears: 0,
    configure: async (nm: Netmap, key: Uint8Array, routes?: RouteSelection) => void e.configured.push({ peers: [...nm.peers.keys()].sort(), key: Buffer.from(key).toString("hex"), ...(routes ? { routes } : {}) }),
    clearPeers: () => void e.clears++,
    pingIcmp: async () => 1.5,
    peerCounters: () => new Map(),
    filterCounters: () => null,
    edgeStats: {} as never,
    port: 41641,
  };
  return e;
}
const fakeMagic = {
  endpoints: () => ["10.0.0.1:41641"],
  homeDerp: () => 0,
  peerPath: () => undefined,
  ping: () => Promise.reject(new Error("no disco")),
  netcheck: async () => ({}) as never,
  stats: () => ({}),
};

function makeBackend(fc: FakeControl, dir?: string, ssh?: SshHook, routes?: BackendDeps["routes"]) {
  const d = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "latticed-be-"));
  if (!dir) {
    dirs.push(d);
    fs.chmodSync(d, 0o700);
  }
  const engine = fakeEngine();
  const b = new LocalBackend({
    state: StateDir.open(d, random),
    engine,
    magic: fakeMagic,
    dial: fc.dial,
    log: pino({ level: "silent" }),
    version: "0.1.0",
    now: () => performance.now(),
    wallNow: Date.now,
    random,
    rnd: () => 0,
    hostname: () => "testhost",
    tun: false,
    ...(ssh ? { ssh } : {}),
    ...(routes ? { routes } : {}),
  });
  backends.push(b);
  return { b, engine, dir: d };
}

const hex = (n: number) => n.toString(16).padStart(64, "0");
function peer(id: number): Node {
  return { ID: id, StableID: `n${id}`, Name: `p${id}.t.`, User: 1, Key: `nodekey:${hex(id)}`, Addresses: [`100.64.0.${id}/32`], AllowedIPs: [`100.64.0.${id}/32`], Endpoints: [] };
}
/** The full map for the node whose last register request `fc` saw. */
function fullMap(fc: FakeControl, extra: Partial<Node> = {}, peers = [peer(2), peer(3)]): MapResponse {
  const key = fc.registers[fc.registers.length - 1]!.NodeKey;
  return { Node: { ...peer(1), Key: key, ...extra }, Peers: peers, PacketFilter: [], Domain: "t", UserProfiles: [] };
}
async function until(pred: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function joined(fc: FakeControl, extra: Partial<Node> = {}) {
  const x = makeBackend(fc);
  await x.b.start();
  expect(x.b.state).toBe("NeedsLogin");
  const up = await x.b.up({ ControlURL: "http://control", AuthKey: "tskey-abc" });
  expect(up.BackendState).toBe("Starting");
  await fc.until(() => fc.streams.length === 1);
  fc.stream.push(fullMap(fc, extra));
  await until(() => x.b.state === "Running" && x.engine.configured.length === 1);
  return x;
}

describe("LocalBackend", () => {
  it("up with an auth key registers (Auth.AuthKey, Hostinfo), streams the map and configures the engine", async () => {
    const fc = new FakeControl();
    const { b, engine } = await joined(fc);
    expect(fc.registers[0]).toMatchObject({ Auth: { AuthKey: "tskey-abc" }, Hostinfo: { Hostname: "testhost", OS: "linux", GoArch: process.arch, IPNVersion: "0.1.0" } });
    expect(fc.stream.req).toMatchObject({ Stream: true, Endpoints: ["10.0.0.1:41641"], DiscoKey: expect.stringMatching(/^discokey:/) });
    expect(engine.configured[0]!.peers).toEqual([2, 3]);
    expect(b.status(true).Peer).toHaveProperty(`nodekey:${hex(2)}`);
    // A delta: one peer removed, one added.
    fc.stream.push({ PeersRemoved: [3], PeersChanged: [peer(4)] });
    await until(() => engine.configured.length === 2);
    expect(engine.configured[1]!.peers).toEqual([2, 4]);
  });

  it("RunSSH: host keys in the registration's Hostinfo, the SSH service started on our addresses once Running, told of SSHPolicy/peer changes, stopped by set --ssh=false (Hostinfo update without keys)", async () => {
    const fc = new FakeControl();
    const calls: string[] = [];
    const ssh: SshHook = {
      apply: async (on, addrs) => void calls.push(`apply ${on} ${addrs.join(",")}`),
      hostKeys: () => ["ssh-ed25519 AAAAtest"],
      policyChanged: () => void calls.push("changed"),
      close: async () => void calls.push("close"),
    };
    const { b } = makeBackend(fc, undefined, ssh);
    await b.start();
    await b.up({ ControlURL: "http://control", AuthKey: "tskey-abc", RunSSH: true });
    expect(fc.registers[0]!.Hostinfo).toMatchObject({ sshHostKeys: ["ssh-ed25519 AAAAtest"] });
    await fc.until(() => fc.streams.length === 1);
    fc.stream.push(fullMap(fc));
    await until(() => calls.includes("apply true 100.64.0.1/32"));
    calls.length = 0;
    fc.stream.push({ SSHPolicy: { rules: [] } } as MapResponse);
    await until(() => calls.includes("changed"));
    await b.patchPrefs({ RunSSH: false });
    await until(() => calls.includes("apply false "));
    await until(() => fc.updates.length > 0);
    expect(fc.updates[fc.updates.length - 1]!.Hostinfo?.sshHostKeys).toBeUndefined();
  });

  it("a failed login (bad auth key) answers up with control_error and leaves NeedsLogin with a Health line", async () => {
    const fc = new FakeControl();
    fc.onRegister = async () => {
      throw refused(401, "auth_key_invalid");
    };
    const { b } = makeBackend(fc);
    await b.start();
    await expect(b.up({ ControlURL: "http://control", AuthKey: "bad" })).rejects.toMatchObject({ code: "control_error" });
    expect(b.state).toBe("NeedsLogin");
    expect(b.health().join()).toMatch(/login failed: auth_key_invalid/);
  });

  it("the first up needs a ControlURL (400 naming it)", async () => {
    const { b } = makeBackend(new FakeControl());
    await b.start();
    await expect(b.up({})).rejects.toThrowError(/^ControlURL: required/);
  });

  it("interactive login: NeedsLogin with AuthURL, then the follow-up completes it", async () => {
    const fc = new FakeControl();
    let release: () => void = () => {};
    fc.onRegister = async (r) => {
      if (!r.Followup) return { ...OK_REGISTER, MachineAuthorized: false, AuthURL: "http://control/a/xyz" };
      await new Promise<void>((res) => (release = res));
      return OK_REGISTER;
    };
    const { b } = makeBackend(fc);
    await b.start();
    const up = await b.up({ ControlURL: "http://control" });
    expect(up).toEqual({ BackendState: "NeedsLogin", AuthURL: "http://control/a/xyz" });
    expect(b.status(false).AuthURL).toBe("http://control/a/xyz");
    await fc.until(() => fc.registers.length === 2);
    expect(fc.registers[1]!.Followup).toBe("http://control/a/xyz");
    release();
    await fc.until(() => fc.streams.length === 1);
    fc.stream.push(fullMap(fc));
    await until(() => b.state === "Running");
    expect(b.status(false).AuthURL).toBe("");
  });

  it("awaiting approval: NeedsMachineAuth while the map is refused 403, Running once approved", async () => {
    const fc = new FakeControl();
    fc.onRegister = async () => ({ ...OK_REGISTER, MachineAuthorized: false });
    let approved = false;
    fc.onStream = (s) => (approved ? undefined : s.fail(refused(403, "machine_not_authorized")));
    const { b } = makeBackend(fc);
    await b.start();
    expect((await b.up({ ControlURL: "http://control", AuthKey: "k" })).BackendState).toBe("NeedsMachineAuth");
    await fc.until(() => fc.streams.length >= 1);
    expect(b.state).toBe("NeedsMachineAuth");
    expect(b.health().join()).toMatch(/approval/);
    approved = true;
    await fc.until(() => fc.streams.length >= 2 && !fc.stream.error, 5_000);
    fc.stream.push(fullMap(fc));
    await until(() => b.state === "Running");
  });

  it("key expiry drops all peers, NeedsLogin with the Health line; up --force-reauth makes a new node key", async () => {
    const fc = new FakeControl();
    const { b, engine } = await joined(fc, { KeyExpiry: new Date(Date.now() + 300).toISOString() });
    const oldKey = fc.registers[0]!.NodeKey;
    await until(() => b.state === "NeedsLogin", 3_000);
    expect(engine.clears).toBeGreaterThanOrEqual(1);
    expect(b.status(true).Peer).toEqual({});
    expect(b.health()).toContain('node key expired; run "lattice up --force-reauth"');
    await b.up({ ForceReauth: true, AuthKey: "tskey-abc" });
    expect(fc.registers[1]!.NodeKey).not.toBe(oldKey);
    await fc.until(() => fc.streams.length === 2);
    fc.stream.push(fullMap(fc));
    await until(() => b.state === "Running");
    expect(b.health()).toEqual([]);
  });

  it("a 401 on the map (expired at control) is key expiry too", async () => {
    const fc = new FakeControl();
    const { b } = await joined(fc);
    fc.onStream = (s) => s.fail(refused(401, "node_key_expired"));
    fc.stream.fail(new ControlError(0, "stream_error", "reset"));
    await until(() => b.state === "NeedsLogin");
    expect(b.health()[0]).toMatch(/node key expired/);
  });

  it("down stops the peers and survives a restart as Stopped; up brings it back", async () => {
    const fc = new FakeControl();
    const { b, engine, dir } = await joined(fc);
    const clears = engine.clears;
    await b.down();
    expect(b.state).toBe("Stopped");
    expect(b.prefs().WantRunning).toBe(false);
    expect(engine.clears).toBe(clears + 1);
    await b.shutdown(100);
    const again = makeBackend(fc, dir);
    await again.b.start();
    expect(again.b.state).toBe("Stopped");
    await again.b.up({});
    expect(again.b.state).toBe("Running"); // from the saved netmap at once
    expect(fc.registers.length).toBe(1); // no new login
  });

  it("logout sends a RegisterRequest with Expiry in the past, forgets the node key, NeedsLogin", async () => {
    const fc = new FakeControl();
    const { b, dir } = await joined(fc);
    const nodeKey = fc.registers[0]!.NodeKey;
    await b.logout();
    expect(fc.registers[1]).toMatchObject({ NodeKey: nodeKey, Expiry: LOGOUT_EXPIRY });
    expect(Date.parse(LOGOUT_EXPIRY)).toBeLessThan(Date.now());
    expect(b.state).toBe("NeedsLogin");
    expect(fs.existsSync(path.join(dir, "node.key"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "netmap.json"))).toBe(false);
  });

  it("logout survives the server ending the map stream under it (the answer is not cut off)", async () => {
    const fc = new FakeControl();
    const { b } = await joined(fc);
    fc.onRegister = async (r) => {
      if (r.Expiry) {
        // lattice-control disconnects the node's stream when its key expires, before answering.
        for (const s of fc.streams) s.close();
        await new Promise((res) => setTimeout(res, 50));
        if (fc.lastConn?.closed) throw new ControlError(200, "bad_response", "HTTP 200: ");
      }
      return OK_REGISTER;
    };
    await b.logout();
    expect(b.state).toBe("NeedsLogin");
  });

  it("an ephemeral node logs out on down", async () => {
    const fc = new FakeControl();
    const { b } = await joined(fc, { Ephemeral: true } as Partial<Node>);
    expect(b.prefs().Ephemeral).toBe(true);
    await b.down();
    expect(fc.registers[1]!.Expiry).toBe(LOGOUT_EXPIRY);
    expect(b.state).toBe("NeedsLogin");
  });

  it("an ephemeral node logs out on shutdown", async () => {
    const fc = new FakeControl();
    const { b } = await joined(fc, { Ephemeral: true } as Partial<Node>);
    await b.shutdown(1_000);
    expect(fc.registers[1]!.Expiry).toBe(LOGOUT_EXPIRY);
  });

  it("restart with a saved node key + netmap + WantRunning: Running at once from the saved netmap while control is down", async () => {
    const fc = new FakeControl();
    const { b, dir } = await joined(fc);
    await b.shutdown(100);
    const nodeKeyFile = fs.readFileSync(path.join(dir, "node.key"), "utf8");
    const nk = new Uint8Array(Buffer.from(nodeKeyFile.trim().slice(8), "hex"));
    expect(fc.registers[0]!.NodeKey).toBe(formatKey("node", x25519PublicKey(nk)));
    fc.down = new ControlError(0, "connect_failed", "ECONNREFUSED");
    const again = makeBackend(fc, dir);
    await again.b.start();
    expect(again.b.state).toBe("Running");
    expect(again.engine.configured[0]?.peers ?? (await until(() => again.engine.configured.length === 1), again.engine.configured[0]!.peers)).toEqual([2, 3]);
    await until(() => again.b.health().some((h) => /not connected to the control server/.test(h)));
    // Control comes back: the loop reconnects by itself with the same node key.
    fc.down = null;
    await fc.until(() => fc.streams.length === 2, 5_000);
    expect(fc.stream.req.NodeKey).toBe(fc.registers[0]!.NodeKey);
  });

  it("PATCH prefs changes only the given fields and persists them", async () => {
    const fc = new FakeControl();
    const { b, dir } = makeBackend(fc);
    await b.start();
    const p = await b.patchPrefs({ Hostname: "web-1", RunSSH: true });
    expect(p).toMatchObject({ Hostname: "web-1", RunSSH: true, WantRunning: false });
    expect(JSON.parse(fs.readFileSync(path.join(dir, "prefs.json"), "utf8")).Hostname).toBe("web-1");
    await expect(b.patchPrefs({ RunSSH: "on" })).rejects.toThrowError(/RunSSH/);
  });

  it("whois finds a peer by IP, IP:port, [v6]:port or node key; refuses garbage", async () => {
    const fc = new FakeControl();
    const { b } = await joined(fc);
    expect(b.whois("100.64.0.2").Node.ID).toBe(2);
    expect(b.whois("100.64.0.3:22").Node.ID).toBe(3);
    expect(b.whois(`nodekey:${hex(2)}`).Node.ID).toBe(2);
    expect(() => b.whois("100.64.0.99")).toThrowError(expect.objectContaining({ code: "peer_not_found" }));
    expect(() => b.whois("not-an-ip")).toThrowError(expect.objectContaining({ code: "bad_request" }));
    expect(() => b.whois("nodekey:zz")).toThrowError(expect.objectContaining({ code: "bad_request" }));
  });

  it("ping by ICMP resolves the peer and reports latency; disco without disco support falls back to ICMP; unknown IPs are peer_not_found", async () => {
    const fc = new FakeControl();
    const { b } = await joined(fc);
    const r = await b.ping("100.64.0.2", "ICMP", 1000);
    expect(r).toMatchObject({ IP: "100.64.0.2", NodeName: "p2", LatencySeconds: 0.0015 });
    const d = await b.ping("100.64.0.2", "disco", 1000);
    expect(d.Err).toMatch(/no disco/);
    (fakeMagic as { hasDisco?: boolean }).hasDisco = false;
    try {
      expect(await b.ping("100.64.0.2", "disco", 1000)).toMatchObject({ LatencySeconds: 0.0015 });
    } finally {
      delete (fakeMagic as { hasDisco?: boolean }).hasDisco;
    }
    await expect(b.ping("100.64.9.9", "ICMP", 1000)).rejects.toMatchObject({ code: "peer_not_found" });
  });

  it("routes: AdvertiseRoutes reach control as Hostinfo.RoutableIPs (lite update on change); the engine and the router get the selection; ExitNodeIP resolves to the peer's StableID, bad choices change nothing; down removes the routing", async () => {
    const fc = new FakeControl();
    const applied: Prefs[] = [];
    let downs = 0;
    const routes = { apply: async (_nm: Netmap, p: Prefs) => void applied.push({ ...p }), down: async () => void downs++, health: () => ["forwarding off (test)"] };
    const { b, engine, dir } = makeBackend(fc, undefined, undefined, routes);
    await b.start();
    await b.up({ ControlURL: "http://control", AuthKey: "tskey-abc", AdvertiseRoutes: ["10.77.0.0/24"] });
    expect(fc.registers[0]!.Hostinfo?.RoutableIPs).toEqual(["10.77.0.0/24"]);
    await fc.until(() => fc.streams.length === 1);
    const exitPeer = { ...peer(3), AllowedIPs: ["100.64.0.3/32", "0.0.0.0/0", "::/0"], Online: true };
    fc.stream.push(fullMap(fc, {}, [peer(2), exitPeer]));
    await until(() => b.state === "Running" && applied.length === 1);
    expect(engine.configured[0]!.routes).toEqual({ routeAll: false, exitNodeId: "", advertiseRoutes: ["10.77.0.0/24"] });
    expect(b.status(false).Health).toContain("forwarding off (test)");
    expect(b.suggestExitNode()).toEqual({ ID: "n3", Name: "p3.t.", Location: null });
    // A change of advertised routes is sent to control at once.
    await b.patchPrefs({ AdvertiseRoutes: ["10.77.0.0/24", "10.88.0.0/24"] });
    await until(() => fc.updates.some((u) => u.Hostinfo?.RoutableIPs?.length === 2));
    // Exit node by IP → StableID, in the engine's selection and the router's prefs.
    const p = await b.patchPrefs({ ExitNodeIP: "100.64.0.3", RouteAll: true });
    expect(p).toMatchObject({ ExitNodeIP: "100.64.0.3", ExitNodeID: "n3", RouteAll: true });
    await until(() => applied.some((a) => a.ExitNodeID === "n3"));
    expect(engine.configured[engine.configured.length - 1]!.routes).toMatchObject({ routeAll: true, exitNodeId: "n3" });
    // Refusals name the value and write nothing.
    await expect(b.patchPrefs({ ExitNodeIP: "100.64.0.2", Hostname: "changed" })).rejects.toThrowError("ExitNodeIP: 100.64.0.2 is not a peer offering an exit node");
    await expect(b.patchPrefs({ AdvertiseRoutes: ["0.0.0.0/0", "::/0"] })).rejects.toThrowError(/while advertising this node as one/);
    const stored = JSON.parse(fs.readFileSync(path.join(dir, "prefs.json"), "utf8"));
    expect(stored).toMatchObject({ Hostname: "", ExitNodeID: "n3", AdvertiseRoutes: ["10.77.0.0/24", "10.88.0.0/24"] });
    expect((await b.patchPrefs({ ExitNodeIP: "" })).ExitNodeID).toBe("");
    await b.down();
    await until(() => downs > 0);
    // No online exit node: 404 no_exit_nodes.
    const offline = makeBackend(new FakeControl());
    await offline.b.start();
    expect(() => offline.b.suggestExitNode()).toThrowError(expect.objectContaining({ code: "no_exit_nodes", status: 404 }));
  });

  it("set/up/down answer only once the host routing is applied (no window where `set --exit-node=E` has returned but traffic still leaves directly, or `down` has returned with table 52 and the chains still there)", async () => {
    const fc = new FakeControl();
    const applied: Prefs[] = [];
    let downs = 0;
    const slow = () => new Promise((r) => setTimeout(r, 150));
    const routes = {
      apply: async (_nm: Netmap, p: Prefs) => {
        await slow();
        applied.push({ ...p });
      },
      down: async () => {
        await slow();
        downs++;
      },
      health: () => [],
    };
    const { b } = makeBackend(fc, undefined, undefined, routes);
    await b.start();
    await b.up({ ControlURL: "http://control", AuthKey: "tskey-abc" });
    await fc.until(() => fc.streams.length === 1);
    fc.stream.push(fullMap(fc, {}, [peer(2), { ...peer(3), AllowedIPs: ["100.64.0.3/32", "0.0.0.0/0", "::/0"], Online: true }]));
    await until(() => b.state === "Running" && applied.length === 1);
    await b.patchPrefs({ ExitNodeIP: "100.64.0.3" });
    expect(applied[applied.length - 1]!.ExitNodeID).toBe("n3");
    await b.patchPrefs({ ExitNodeIP: "" });
    expect(applied[applied.length - 1]!.ExitNodeID).toBe("");
    await b.down();
    expect(downs).toBeGreaterThan(0);
    const d = downs;
    const n = applied.length;
    await b.up({});
    expect(applied.length).toBe(n + 1);
    await b.patchPrefs({ WantRunning: false });
    expect(downs).toBeGreaterThan(d);
  });
});
