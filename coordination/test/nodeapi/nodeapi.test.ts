import { afterEach, beforeEach, describe, expect, it } from "vitest";
import http from "node:http";
import net from "node:net";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { ControlClient, ControlError, type MapStream, fetchServerKey, noiseKeyPair, dialControl } from "@lattice/control-client";
import { formatKey, type MapResponse, type NodeKeyString } from "@lattice/types";
import { attachNodeApi, type NodeApi } from "../../src/nodeapi/attach.js";
import { MemoryBackend, allowAll } from "./memory-backend.js";

const rnd = (n: number) => new Uint8Array(randomBytes(n));
const nodeKey = (): NodeKeyString => formatKey("node", rnd(32));

interface Harness {
  server: http.Server;
  url: string;
  api: NodeApi;
  backend: MemoryBackend;
  serverKey: ReturnType<typeof noiseKeyPair>;
}

async function start(opts: { keepAliveMs?: number; idleTimeoutMs?: number } = {}): Promise<Harness> {
  const backend = new MemoryBackend();
  backend.authKeys.set("tskey-good", { preapproved: true, used: false, reusable: true });
  backend.authKeys.set("tskey-once", { preapproved: true, used: false, reusable: false });
  backend.authKeys.set("tskey-approval", { preapproved: false, used: false, reusable: true });
  const serverKey = noiseKeyPair(rnd(32));
  const server = http.createServer();
  const api = attachNodeApi(server, backend, { serverKey, keepAliveMs: opts.keepAliveMs ?? 60_000, idleTimeoutMs: opts.idleTimeoutMs, log: (e) => console.error("nodeapi error", e) });
  server.on("request", (req, res) => {
    if (!api.handleRequest(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, api, backend, serverKey };
}

/** Reads the next message of a stream, failing after `ms`. */
async function next(stream: MapStream, ms = 2000): Promise<MapResponse> {
  const it = stream[Symbol.asyncIterator]();
  const r = await Promise.race([
    it.next(),
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no map message within ${ms} ms`)), ms)),
  ]);
  if (r.done) throw new Error("stream ended");
  return r.value;
}

/** Reads messages until one satisfies `pred`. */
async function until(stream: MapStream, pred: (m: MapResponse) => boolean, ms = 2000): Promise<MapResponse> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = await next(stream, Math.max(1, deadline - Date.now()));
    if (pred(m)) return m;
  }
}

async function joinNode(h: Harness, host: string, authKey = "tskey-good") {
  const client = await ControlClient.connect({ serverUrl: h.url, machineKey: noiseKeyPair(rnd(32)) });
  const nk = nodeKey();
  const reg = await client.register({ Version: 1, NodeKey: nk, Auth: { AuthKey: authKey }, Hostinfo: { Hostname: host } });
  return { client, nk, reg };
}

describe("node API over Noise + HTTP/2", () => {
  let h: Harness;
  const clients: ControlClient[] = [];
  beforeEach(async () => {
    h = await start();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    h.api.close();
    h.server.closeAllConnections();
    await new Promise((r) => h.server.close(r));
  });

  it("serves the Noise public key at /key", async () => {
    const key = await fetchServerKey(h.url);
    expect(Buffer.from(key).equals(Buffer.from(h.serverKey.publicKey))).toBe(true);
  });

  it("registers with an auth key and streams a full map, then peers joining and leaving", async () => {
    const a = await joinNode(h, "alpha");
    clients.push(a.client);
    expect(a.reg.MachineAuthorized).toBe(true);
    const stream = a.client.map({ Version: 1, NodeKey: a.nk, Stream: true, KeepAlive: true, Endpoints: ["192.0.2.1:41641"] });
    const full = await next(stream);
    expect(full.Node?.Name).toBe("alpha.test.lattice.");
    expect(full.Node?.Endpoints).toEqual(["192.0.2.1:41641"]);
    expect(full.Peers).toEqual([]);
    expect(full.Domain).toBe("test.lattice");
    expect(full.DERPMap?.Regions["900"].RegionID).toBe(900);
    expect(full.PacketFilter?.[0].SrcIPs).toEqual(["*"]);

    const b = await joinNode(h, "bravo");
    clients.push(b.client);
    const joined = await until(stream, (m) => (m.PeersChanged ?? []).some((p) => p.Name === "bravo.test.lattice."));
    const bravo = joined.PeersChanged!.find((p) => p.Name === "bravo.test.lattice.")!;
    expect(bravo.Key).toBe(b.nk);

    // bravo's stream sees alpha in its full map; its endpoints reach alpha as a patch.
    const bs = b.client.map({ Version: 1, NodeKey: b.nk, Stream: true, Endpoints: ["198.51.100.7:41641"] });
    const bFull = await next(bs);
    expect(bFull.Peers?.map((p) => p.Name)).toEqual(["alpha.test.lattice."]);
    const patch = await until(stream, (m) => (m.PeersChangedPatch ?? []).some((p) => p.NodeID === bravo.ID));
    expect(patch.PeersChangedPatch!.find((p) => p.NodeID === bravo.ID)!.Endpoints).toEqual(["198.51.100.7:41641"]);
    const online = await until(stream, (m) => m.OnlineChange?.[String(bravo.ID)] === true);
    expect(online.OnlineChange).toEqual({ [String(bravo.ID)]: true });

    h.backend.deleteNode(bravo.ID);
    const gone = await until(stream, (m) => (m.PeersRemoved ?? []).includes(bravo.ID));
    expect(gone.PeersRemoved).toEqual([bravo.ID]);
    // bravo's own stream is closed by the server.
    await expect(until(bs, () => false, 2000)).rejects.toThrow(/stream ended/);
    stream.close();
  });

  it("pushes a new packet filter to connected streams when the policy changes", async () => {
    const a = await joinNode(h, "alpha");
    const b = await joinNode(h, "bravo");
    clients.push(a.client, b.client);
    const sa = a.client.map({ Version: 1, NodeKey: a.nk, Stream: true });
    const sb = b.client.map({ Version: 1, NodeKey: b.nk, Stream: true });
    await next(sa);
    await next(sb);
    const t0 = Date.now();
    const onlyWeb = [{ SrcIPs: ["100.64.0.0/10"], DstPorts: [{ IP: "*", Ports: { First: 443, Last: 443 } }] }];
    h.backend.setPolicy((viewer, all) => ({ ...allowAll(viewer, all), packetFilter: onlyWeb }));
    const ma = await until(sa, (m) => m.PacketFilter !== undefined, 1000);
    const mb = await until(sb, (m) => m.PacketFilter !== undefined, 1000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(ma.PacketFilter).toEqual(onlyWeb);
    expect(mb.PacketFilter).toEqual(onlyWeb);
    // Policy that hides bravo from alpha: alpha gets PeersRemoved.
    h.backend.setPolicy((viewer) => ({ peers: [], packetFilter: viewer.Name.startsWith("alpha") ? [] : onlyWeb }));
    const hidden = await until(sa, (m) => (m.PeersRemoved ?? []).length > 0);
    expect(hidden.PacketFilter).toEqual([]);
  });

  it("a second stream for the same node replaces the first", async () => {
    const a = await joinNode(h, "alpha");
    clients.push(a.client);
    const first = a.client.map({ Version: 1, NodeKey: a.nk, Stream: true });
    await next(first);
    expect(h.api.activeStreams()).toBe(1);
    const second = a.client.map({ Version: 1, NodeKey: a.nk, Stream: true });
    await next(second);
    await expect(until(first, () => false, 2000)).rejects.toThrow(/stream ended/);
    expect(h.api.activeStreams()).toBe(1);
    second.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(h.api.activeStreams()).toBe(0);
    // online +1 +1 −1 −1: the backend sees balanced calls.
    const calls = h.backend.onlineCalls.map(([, on]) => (on ? 1 : -1) as number);
    expect(calls.reduce((x, y) => x + y, 0)).toBe(0);
    expect(calls.length).toBe(4);
  });

  it("closes idle control connections but not ones with an open map stream", async () => {
    h.api.close();
    h.server.closeAllConnections();
    await new Promise((r) => h.server.close(r));
    h = await start({ keepAliveMs: 100, idleTimeoutMs: 300 });
    const idle = await ControlClient.connect({ serverUrl: h.url, machineKey: noiseKeyPair(rnd(32)) });
    clients.push(idle);
    const a = await joinNode(h, "alpha");
    clients.push(a.client);
    const s = a.client.map({ Version: 1, NodeKey: a.nk, Stream: true, KeepAlive: true });
    await next(s);
    await new Promise((r) => setTimeout(r, 1000));
    expect(idle.closed).toBe(true);
    expect(a.client.closed).toBe(false);
    expect((await next(s)).KeepAlive).toBe(true);
  });

  it("sends keep-alives on idle streams", async () => {
    h.api.close();
    h.server.closeAllConnections();
    await new Promise((r) => h.server.close(r));
    h = await start({ keepAliveMs: 100 });
    const a = await joinNode(h, "alpha");
    clients.push(a.client);
    const s = a.client.map({ Version: 1, NodeKey: a.nk, Stream: true, KeepAlive: true });
    await next(s);
    const ka = await until(s, (m) => m.KeepAlive === true, 2000);
    expect(ka.KeepAlive).toBe(true);
  });

  it("refuses bad requests with 4xx and a message naming the problem", async () => {
    const c = await ControlClient.connect({ serverUrl: h.url, machineKey: noiseKeyPair(rnd(32)) });
    clients.push(c);
    const unknown = await c.raw("/machine/register", JSON.stringify({ Version: 1, NodeKey: nodeKey(), Bogus: 1 }));
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body).error).toMatch(/unknown field "Bogus"/);
    const badKey = await c.raw("/machine/register", JSON.stringify({ Version: 1, NodeKey: "nodekey:zz" }));
    expect(badKey.status).toBe(400);
    expect(JSON.parse(badKey.body).error).toMatch(/NodeKey/);
    const nested = await c.raw("/machine/map", JSON.stringify({ Version: 1, NodeKey: nodeKey(), Hostinfo: { Hostname: "x", Nope: true } }));
    expect(nested.status).toBe(400);
    expect(JSON.parse(nested.body).error).toMatch(/Hostinfo: unknown field "Nope"/);
    const badJson = await c.raw("/machine/map", "{not json");
    expect(badJson.status).toBe(400);
    expect(JSON.parse(badJson.body).code).toBe("bad_json");
    const big = await c.raw("/machine/register", Buffer.alloc(300 * 1024, 0x20));
    expect(big.status).toBe(413);
    const notFound = await c.raw("/machine/nope", "{}");
    expect(notFound.status).toBe(404);
    await expect(c.register({ Version: 1, NodeKey: nodeKey(), Auth: { AuthKey: "tskey-wrong" } })).rejects.toMatchObject({ status: 401, code: "invalid_auth_key" });
    const once = await c.register({ Version: 1, NodeKey: nodeKey(), Auth: { AuthKey: "tskey-once" } });
    expect(once.MachineAuthorized).toBe(true);
    const c2 = await ControlClient.connect({ serverUrl: h.url, machineKey: noiseKeyPair(rnd(32)) });
    clients.push(c2);
    await expect(c2.register({ Version: 1, NodeKey: nodeKey(), Auth: { AuthKey: "tskey-once" } })).rejects.toMatchObject({ status: 401, code: "auth_key_used" });
    // A node awaiting approval cannot map.
    const nk = nodeKey();
    const pending = await c2.register({ Version: 1, NodeKey: nk, Auth: { AuthKey: "tskey-approval" } });
    expect(pending.MachineAuthorized).toBe(false);
    const s = c2.map({ Version: 1, NodeKey: nk, Stream: true });
    await expect(next(s)).rejects.toMatchObject({ status: 403, code: "machine_not_authorized" });
    // A node key of another machine is refused.
    const s2 = c.map({ Version: 1, NodeKey: nk, Stream: true });
    await expect(next(s2)).rejects.toBeInstanceOf(ControlError);
    expect(h.api.counters.badRequests).toBeGreaterThanOrEqual(6);
    // The connection still works after all that.
    const ok = await c.raw("/machine/register", JSON.stringify({ Version: 1, NodeKey: nodeKey(), Auth: { AuthKey: "tskey-good" } }));
    expect(ok.status).toBe(200);
  });

  it("refuses malformed upgrades and handshakes with 400 and counts them", async () => {
    const raw = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${h.url}/ts2021`, { method: "POST", headers: { Connection: "upgrade", Upgrade: "lattice-control-protocol", ...headers } });
        req.on("response", (res) => {
          let body = "";
          res.on("data", (c) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("upgrade", () => reject(new Error("unexpected upgrade")));
        req.on("error", reject);
        req.end();
      });
    expect(await raw({})).toMatchObject({ status: 400, body: expect.stringMatching(/missing X-Lattice-Handshake/) });
    expect(await raw({ "X-Lattice-Handshake": "!!!" })).toMatchObject({ status: 400 });
    expect(await raw({ "X-Lattice-Handshake": Buffer.alloc(50).toString("base64") })).toMatchObject({ status: 400, body: expect.stringMatching(/size/) });
    expect(await raw({ "X-Lattice-Handshake": Buffer.alloc(101).toString("base64") })).toMatchObject({ status: 400 });
    // Right shape, wrong server key: authentication fails.
    const wrong = noiseKeyPair(rnd(32)).publicKey;
    await expect(dialControl({ serverUrl: h.url, machineKey: noiseKeyPair(rnd(32)), serverPublic: wrong })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/wrong server key/) });
    expect(h.api.counters.handshakeFailures).toBe(5);
    // The server still works.
    const a = await joinNode(h, "alpha");
    clients.push(a.client);
    expect(a.reg.MachineAuthorized).toBe(true);
  });

  it("closes a channel on a forged record and keeps serving others", async () => {
    const conn = await dialControl({ serverUrl: h.url, machineKey: noiseKeyPair(rnd(32)), serverPublic: h.serverKey.publicKey });
    // Reach under the Noise layer: write a record with a garbage tag straight to the socket.
    const socket = (conn as unknown as { socket: net.Socket }).socket;
    const closed = new Promise<void>((r) => conn.on("close", () => r()));
    conn.on("error", () => {});
    conn.resume(); // read (and so notice the server closing)
    socket.write(Buffer.from([4, 0, 20, ...rnd(20)]));
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    expect(h.api.counters.malformedFrames).toBe(1);
    // Oversized frame header.
    const conn2 = await dialControl({ serverUrl: h.url, machineKey: noiseKeyPair(rnd(32)), serverPublic: h.serverKey.publicKey });
    const closed2 = new Promise<void>((r) => conn2.on("close", () => r()));
    conn2.on("error", () => {});
    conn2.resume();
    (conn2 as unknown as { socket: net.Socket }).socket.write(Buffer.from([4, 0xff, 0xff]));
    await closed2;
    await new Promise((r) => setTimeout(r, 50));
    expect(h.api.counters.malformedFrames).toBe(2);
    const a = await joinNode(h, "alpha");
    clients.push(a.client);
    expect(a.reg.MachineAuthorized).toBe(true);
  });
});
