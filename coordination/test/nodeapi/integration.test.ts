/**
 * The node protocol against the real `lattice-control` process (SQLite file): nodes
 * register with auth keys over Noise + HTTP/2, keep map streams open, and observe joins
 * and policy updates as deltas. Hostile bytes on the channel close only that connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import type net from "node:net";
import { randomBytes } from "node:crypto";
import { dialControl, fetchServerKey, noiseKeyPair, type MapStream } from "@lattice/control-client";
import type { MapResponse } from "@lattice/types";
import { startServer, TestNode, type ServerProc } from "../harness.js";

const ALLOW_ALL = `{ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ] }`;
const SSH_ONLY = `{ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:22"] } ] }`;

async function nextMsg(it: AsyncIterator<MapResponse>, ms: number): Promise<MapResponse> {
  const r = await Promise.race([it.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no map message within ${ms} ms`)), ms))]);
  if (r.done) throw new Error("map stream ended");
  return r.value;
}

async function until(it: AsyncIterator<MapResponse>, pred: (m: MapResponse) => boolean, ms: number): Promise<MapResponse> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = await nextMsg(it, Math.max(1, deadline - Date.now()));
    if (pred(m)) return m;
  }
}

describe("node protocol against the real server", () => {
  let s: ServerProc;
  let apiKey: string;
  let authKey: string;
  const nodes: TestNode[] = [];
  const streams: MapStream[] = [];

  const join = async (host: string) => {
    const n = await new TestNode(s.url, host).connect();
    nodes.push(n);
    const reg = await n.register({ Auth: { AuthKey: authKey } });
    expect(reg.MachineAuthorized).toBe(true);
    expect(reg.Error).toBe("");
    return n;
  };
  const open = (n: TestNode) => {
    const st = n.map({ KeepAlive: true });
    streams.push(st);
    return st[Symbol.asyncIterator]();
  };
  const setPolicy = async (policy: string) => {
    const r = await s.api("PUT", "/policy", { policy }, apiKey);
    expect(r.status).toBe(200);
  };

  beforeAll(async () => {
    s = await startServer();
    expect((await s.cli(["users", "create", "alice", "--password", "correct horse"])).code).toBe(0);
    apiKey = (await s.cli(["apikeys", "create", "--description", "nodeapi"])).stdout.trim();
    const k = await s.cli(["keys", "create", "--user", "alice", "--reusable", "--preapproved"]);
    expect(k.code).toBe(0);
    authKey = k.stdout.trim();
    await setPolicy(ALLOW_ALL);
  }, 60_000);

  afterAll(async () => {
    for (const st of streams) st.close();
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("serves its Noise key at /key", async () => {
    const key = await fetchServerKey(s.url);
    expect(key).toHaveLength(32);
  });

  it("a node join reaches the other nodes' streams", async () => {
    const a = await join("join-a");
    const b = await join("join-b");
    const sa = open(a);
    const sb = open(b);
    const fa = await nextMsg(sa, 5000);
    const fb = await nextMsg(sb, 5000);
    expect(fa.Node?.Name).toMatch(/^join-a\./);
    expect(fa.Peers?.map((p) => p.Name)).toContain(fb.Node!.Name);
    const t0 = Date.now();
    const c = await join("join-c");
    const isC = (m: MapResponse) => (m.PeersChanged ?? []).some((p) => p.Key === c.nodeKey);
    await until(sa, isC, 3000);
    await until(sb, isC, 3000);
    console.log(`join reached 2 streams in ${Date.now() - t0} ms (incl. registration)`);
    // c's endpoints arrive once it opens its own stream.
    const sc = open(c);
    const fc = await nextMsg(sc, 5000);
    const cid = fc.Node!.ID;
    const seen = await until(sa, (m) => (m.PeersChangedPatch ?? []).some((p) => p.NodeID === cid) || (m.PeersChanged ?? []).some((p) => p.ID === cid && (p.Endpoints?.length ?? 0) > 0), 3000);
    expect(seen).toBeDefined();
  });

  it("a policy update pushes new packet filters to every connected stream within 1 s", async () => {
    const a = await join("pol-a");
    const b = await join("pol-b");
    const sa = open(a);
    const sb = open(b);
    const fa = await nextMsg(sa, 5000);
    await nextMsg(sb, 5000);
    expect(JSON.stringify(fa.PacketFilter)).toContain('"Last":65535');
    const t0 = Date.now();
    await setPolicy(SSH_ONLY);
    const hasSshOnly = (m: MapResponse) => m.PacketFilter !== undefined && m.PacketFilter.length > 0 && m.PacketFilter.every((r) => (r.DstPorts ?? []).every((d) => d.Ports.First === 22 && d.Ports.Last === 22));
    const ma = await until(sa, hasSshOnly, 1000);
    const mb = await until(sb, hasSshOnly, 1000);
    const elapsed = Date.now() - t0;
    console.log(`policy update reached 2 streams in ${elapsed} ms`);
    expect(elapsed).toBeLessThan(1000);
    expect(ma.PacketFilter).toEqual(mb.PacketFilter);
    await setPolicy(ALLOW_ALL);
    await until(sa, (m) => JSON.stringify(m.PacketFilter ?? "").includes('"Last":65535'), 1000);
  });

  it("malformed upgrades and forged records are refused; the server keeps serving", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${s.url}/ts2021`, { method: "POST", headers: { Connection: "upgrade", Upgrade: "lattice-control-protocol", "X-Lattice-Handshake": Buffer.alloc(101, 7).toString("base64") } });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("upgrade", () => reject(new Error("unexpected upgrade")));
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(400);
    const conn = await dialControl({ serverUrl: s.url, machineKey: noiseKeyPair(new Uint8Array(randomBytes(32))), serverPublic: await fetchServerKey(s.url) });
    conn.on("error", () => {});
    conn.resume(); // read (and so notice the server closing)
    const closed = new Promise<void>((r) => conn.on("close", () => r()));
    (conn as unknown as { socket: net.Socket }).socket.write(Buffer.from([4, 0, 32, ...randomBytes(32)]));
    await closed;
    expect(s.proc.exitCode).toBeNull();
    const n = await join("after-garbage");
    const f = await nextMsg(open(n), 5000);
    expect(f.Node?.Name).toMatch(/^after-garbage\./);
  });
});
