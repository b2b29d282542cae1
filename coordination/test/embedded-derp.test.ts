/**
 * The DERP relay + STUN server lattice-control embeds by default: the published DERP map
 * (embedded region + `--derp-map` regions), admission of current nodes only, STUN,
 * `--no-derp`, and the flags' validation.
 */
import { createSocket } from "node:dgram";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { x25519PublicKey } from "@lattice/crypto";
import { connectDerp, keyEqual, type DerpMessage } from "@lattice/derp";
import { createBindingRequest, parseBindingResponse } from "@lattice/stun";
import { formatKey } from "@lattice/types";
import { runCli, startServer, TestNode, waitFor, type ServerProc } from "./harness.js";

const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));
const servers: ServerProc[] = [];
const closers: Array<() => void> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function server(args: string[] = []): Promise<ServerProc> {
  const s = await startServer({ args });
  servers.push(s);
  return s;
}

/** Registers a node whose node key is the public half of a fresh private key; returns both. */
async function joinNode(s: ServerProc, name: string, ...keyFlags: string[]): Promise<{ node: TestNode; priv: Uint8Array }> {
  if ((await s.cli(["users", "list"])).stdout.indexOf("alice") < 0) expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
  const k = (await s.cli(["keys", "create", "--user", "alice", "--preapproved", ...keyFlags])).stdout.trim();
  const priv = random(32);
  const node = await new TestNode(s.url, name).connect();
  node.nodeKey = formatKey("node", x25519PublicKey(priv));
  await node.register({ Auth: { AuthKey: k }, Hostinfo: { Hostname: name } });
  closers.push(() => node.close());
  return { node, priv };
}

async function fullMap(n: TestNode): Promise<any> {
  const it = n.map()[Symbol.asyncIterator]();
  const full = (await it.next()).value;
  await it.return!();
  return full;
}

function stunPortOf(s: ServerProc): number {
  const m = /STUN on UDP port (\d+)/.exec(s.stdout());
  if (!m) throw new Error(`no STUN line in:\n${s.stdout()}`);
  return Number(m[1]);
}

describe("embedded DERP relay and STUN", () => {
  it("a full MapResponse carries the embedded region (host/port from --server-url, bound STUN port, InsecureHTTP over http) plus the --derp-map regions", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-derpmap-"));
    const extra = { Regions: { "901": { RegionID: 901, RegionCode: "fra", RegionName: "Frankfurt", Nodes: [{ Name: "901a", RegionID: 901, HostName: "derp.example.test", DERPPort: 443 }] } } };
    writeFileSync(join(dir, "derp.json"), JSON.stringify(extra));
    const s = await server(["--derp-map", join(dir, "derp.json"), "--derp-region-id", "950", "--derp-region-code", "home-lab"]);
    const { node } = await joinNode(s, "mapper");
    const full = await fullMap(node);
    expect(Object.keys(full.DERPMap.Regions).sort()).toEqual(["901", "950"]);
    expect(full.DERPMap.Regions["901"].Nodes[0].HostName).toBe("derp.example.test");
    expect(full.DERPMap.Regions["950"]).toEqual({
      RegionID: 950,
      RegionCode: "home-lab",
      RegionName: "home-lab",
      Nodes: [{ Name: "950a", RegionID: 950, HostName: "127.0.0.1", IPv4: "127.0.0.1", DERPPort: s.port, STUNPort: stunPortOf(s), InsecureHTTP: true }],
    });
  });

  it("admits a current node's key to the embedded relay and relays its packets; a random key, an expired node and a deleted node are refused", async () => {
    const s = await server();
    const a = await joinNode(s, "derp-a");
    const b = await joinNode(s, "derp-b");
    const ca = await connectDerp(s.url, { privateKey: a.priv, random });
    closers.push(() => ca.close());
    const cb = await connectDerp(s.url, { privateKey: b.priv, random });
    closers.push(() => cb.close());
    const got: DerpMessage[] = [];
    cb.onMessage((m) => got.push(m));
    expect(ca.send(cb.client.publicKey, Uint8Array.from([1, 2, 3]))).toBe(true);
    await waitFor(() => got.some((m) => m.kind === "packet" && keyEqual(m.source, ca.client.publicKey)) || null);

    await expect(connectDerp(s.url, { privateKey: random(32), random, timeoutMs: 5000 })).rejects.toThrow(/closed during login/);
    expect((await s.cli(["nodes", "expire", "derp-a"])).code).toBe(0);
    await expect(connectDerp(s.url, { privateKey: a.priv, random, timeoutMs: 5000 })).rejects.toThrow(/closed during login/);
    expect((await s.cli(["nodes", "delete", "derp-b"])).code).toBe(0);
    await expect(connectDerp(s.url, { privateKey: b.priv, random, timeoutMs: 5000 })).rejects.toThrow(/closed during login/);
  });

  it("serves /derp/probe, /generate_204 and answers STUN Binding requests on --stun-port", async () => {
    const s = await server();
    const probe = await fetch(`${s.url}/derp/probe`);
    expect(probe.status).toBe(200);
    expect(probe.headers.get("access-control-allow-origin")).toBe("*");
    const g = await fetch(`${s.url}/generate_204`, { headers: { "X-Tailscale-Challenge": "abc123" } });
    expect(g.status).toBe(204);
    expect(g.headers.get("x-tailscale-response")).toBe("response abc123");
    expect((await fetch(`${s.url}/derp`)).status).toBe(426);
    const sock = createSocket("udp4");
    closers.push(() => sock.close());
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const { transactionId, packet } = createBindingRequest(random);
    const reply = new Promise<Buffer>((r) => sock.once("message", (m) => r(m)));
    sock.send(packet, stunPortOf(s), "127.0.0.1");
    const resp = parseBindingResponse(await reply);
    expect(resp.ok && Buffer.from(resp.value.transactionId).equals(Buffer.from(transactionId))).toBe(true);
    if (resp.ok) expect(resp.value.mapped).toEqual({ family: 4, ip: Uint8Array.from([127, 0, 0, 1]), port: sock.address().port });
  });

  it("--no-derp: no relay (the /derp upgrade is refused), no STUN line, and the map holds only the --derp-map regions", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-derpmap-"));
    writeFileSync(join(dir, "derp.json"), JSON.stringify({ Regions: { "900": { RegionID: 900, RegionCode: "ext", RegionName: "Ext", Nodes: [{ Name: "900a", RegionID: 900, HostName: "derp.example.test" }] } } }));
    const s = await server(["--no-derp", "--derp-map", join(dir, "derp.json")]);
    expect(s.stdout()).not.toMatch(/DERP relay/);
    const { node, priv } = await joinNode(s, "nod");
    expect(Object.keys((await fullMap(node)).DERPMap.Regions)).toEqual(["900"]);
    await expect(connectDerp(s.url, { privateKey: priv, random, timeoutMs: 5000 })).rejects.toThrow();
  });

  it("LATTICE_CONTROL_NO_DERP=true is --no-derp", async () => {
    const s = await startServer({ env: { LATTICE_CONTROL_NO_DERP: "true" } });
    servers.push(s);
    expect(s.stdout()).not.toMatch(/DERP relay/);
  });

  it("bad DERP settings stop the server with a message naming the setting, file and region", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-derpmap-"));
    const base = ["serve", "--db", join(dir, "x.db"), "--socket", join(dir, "s.sock"), "--listen", "127.0.0.1:0"];
    writeFileSync(join(dir, "clash.json"), JSON.stringify({ Regions: { "900": { RegionID: 900, RegionCode: "x", RegionName: "X", Nodes: [] } } }));
    writeFileSync(join(dir, "code.json"), JSON.stringify({ Regions: { "901": { RegionID: 901, RegionCode: "lattice", RegionName: "X", Nodes: [] } } }));
    writeFileSync(join(dir, "key.json"), JSON.stringify({ Regions: { "902": { RegionID: 903, RegionCode: "y", RegionName: "Y", Nodes: [] } } }));
    for (const [args, want] of [
      [["--derp-region-id", "1000"], /derpRegionId \(--derp-region-id\): "1000" is outside 900–999/],
      [["--derp-region-id", "9x"], /derpRegionId \(--derp-region-id\): "9x" is not a whole number/],
      [["--derp-region-code", "Bad Code"], /derpRegionCode \(--derp-region-code\): "Bad Code" is not a region code/],
      [["--stun-port", "70000"], /stunPort \(--stun-port\): "70000" is not a port/],
      [["--derp-map", join(dir, "clash.json")], new RegExp(`--derp-map ${join(dir, "clash.json")}: derpMap.Regions.900: region 900 is the embedded relay's region`)],
      [["--derp-map", join(dir, "code.json")], /derpMap.Regions.901.RegionCode: "lattice" is already used by the embedded relay/],
      [["--derp-map", join(dir, "key.json")], /derpMap.Regions.902.RegionID: 903 differs from its key 902/],
    ] as const) {
      const r = await runCli([...base, ...args]);
      expect(r.code, String(args)).not.toBe(0);
      expect(r.stderr).toMatch(want);
    }
  });

  it("a STUN port in use stops the server with a message naming --stun-port", async () => {
    const sock = createSocket("udp4");
    closers.push(() => sock.close());
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const dir = mkdtempSync(join(tmpdir(), "lattice-derpmap-"));
    const r = await runCli(["serve", "--db", join(dir, "x.db"), "--socket", join(dir, "s.sock"), "--listen", "127.0.0.1:0", "--stun-port", String(sock.address().port)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`--stun-port ${sock.address().port}: cannot listen for STUN`));
  });
});

