import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { x25519PublicKey } from "@lattice/crypto";
import { connectDerp, keyEqual, type DerpConnection, type DerpMessage } from "@lattice/derp";
import { freePort, random, startRelayProc, waitFor, type RelayProc } from "./harness.js";

const procs: RelayProc[] = [];
const conns: DerpConnection[] = [];
const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.close();
  await Promise.all(procs.splice(0).map((p) => p.stop()));
  for (const s of servers.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function client(url: string, privateKey = random(32)): Promise<{ c: DerpConnection; msgs: DerpMessage[] }> {
  const c = await connectDerp(url, { privateKey, random });
  conns.push(c);
  const msgs: DerpMessage[] = [];
  c.onMessage((m) => msgs.push(m));
  return { c, msgs };
}

function meshKeyFile(mode = 0o600): string {
  const dir = mkdtempSync(join(tmpdir(), "lattice-derp-mesh-"));
  dirs.push(dir);
  const f = join(dir, "mesh.key");
  writeFileSync(f, Buffer.from(random(32)).toString("hex") + "\n");
  chmodSync(f, mode);
  return f;
}

describe("mesh of two lattice-derp relays", () => {
  it("clients homed on different relays reach each other through ForwardPacket; PeerGone crosses the mesh", async () => {
    const keyFile = meshKeyFile();
    const [p1, p2] = [await freePort(), await freePort()];
    const u1 = `http://127.0.0.1:${p1}`;
    const u2 = `http://127.0.0.1:${p2}`;
    const mesh = ["--mesh-key-file", keyFile, "--mesh-with", `${u1},${u2}`]; // each lists both; self is skipped
    procs.push(await startRelayProc(mesh, { port: p1 }), await startRelayProc(mesh, { port: p2 }));
    const a = await client(u1);
    const b = await client(u2);
    const ak = a.c.client.publicKey;
    const bk = b.c.client.publicKey;
    // Routes appear once each relay's watcher has seen the other's PeerPresent.
    await waitFor("A→B across the mesh", () => {
      a.c.send(bk, Uint8Array.of(1));
      return b.msgs.some((m) => m.kind === "packet" && keyEqual(m.source, ak));
    });
    await waitFor("B→A across the mesh", () => {
      b.c.send(ak, Uint8Array.of(2));
      return a.msgs.some((m) => m.kind === "packet" && keyEqual(m.source, bk));
    });
    const s1 = await procs[0]!.stats();
    expect(s1.derp.packetsForwardedOut).toBeGreaterThan(0);
    expect(s1.derp.packetsForwardedIn).toBeGreaterThan(0);
    expect(s1.mesh.filter((l: { connected: boolean }) => l.connected)).toHaveLength(1);
    b.c.close();
    await waitFor("PeerGone for B at A", () => a.msgs.some((m) => m.kind === "peerGone" && keyEqual(m.peer, bk)));
    expect(procs[0]!.log()).toMatch(/URL is this relay itself/);
  });

  it("mesh links verify the peer's TLS certificate: a relay with an untrusted (self-signed) certificate gets no link, so no mesh key is sent to it", async () => {
    const keyFile = meshKeyFile();
    const p2 = await freePort();
    procs.push(await startRelayProc(["--self-signed", "--mesh-key-file", keyFile], { port: p2, https: true }));
    const a = await startRelayProc(["--mesh-key-file", keyFile, "--mesh-with", `https://127.0.0.1:${p2}`]);
    procs.push(a);
    await waitFor("a refused link attempt", () => /cannot connect to peer relay/.test(a.log()));
    expect(a.log()).toMatch(/self[- ]signed certificate/);
    const st = await a.stats();
    expect(st.mesh[0].connected).toBe(false);
  });

  it("a mesh key file readable by others is refused with a clear message", async () => {
    const f = meshKeyFile(0o644);
    await expect(startRelayProc(["--mesh-key-file", f])).rejects.toThrow(/mode 644 lets others read the mesh key; chmod 600/);
  });

  it("a relay with a different mesh key is refused at login (counted ERR_DERP_FORBIDDEN), so no routes form", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    procs.push(await startRelayProc(["--mesh-key-file", meshKeyFile(), "--mesh-with", `http://127.0.0.1:${p2}`], { port: p1 }));
    procs.push(await startRelayProc(["--mesh-key-file", meshKeyFile(), "--mesh-with", `http://127.0.0.1:${p1}`], { port: p2 }));
    await waitFor("refusals counted", async () => (await procs[1]!.stats()).derp.protocolErrors.ERR_DERP_FORBIDDEN >= 1);
    const a = await client(`http://127.0.0.1:${p1}`);
    const b = await client(`http://127.0.0.1:${p2}`);
    for (let i = 0; i < 5; i++) a.c.send(b.c.client.publicKey, Uint8Array.of(i));
    await new Promise((r) => setTimeout(r, 300));
    expect(b.msgs.some((m) => m.kind === "packet")).toBe(false);
    expect((await procs[0]!.stats()).derp.dropUnknownDest).toBeGreaterThan(0);
  });
});

describe("--verify-clients", () => {
  it("admits only keys the control server allows (POST /derp/admit contract); fails closed when control is down", async () => {
    const allowed = random(32);
    const seen: any[] = [];
    const control = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        if (req.method !== "POST" || req.url !== "/derp/admit") return void res.writeHead(404).end();
        const j = JSON.parse(body);
        seen.push(j);
        const ok = j.NodePublic === `nodekey:${Buffer.from(x25519PublicKey(allowed)).toString("hex")}`;
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ Allow: ok }));
      });
    });
    servers.push(control);
    await new Promise<void>((r) => control.listen(0, "127.0.0.1", () => r()));
    const cport = (control.address() as { port: number }).port;
    const r = await startRelayProc(["--verify-clients", "--control-url", `http://127.0.0.1:${cport}`]);
    procs.push(r);
    const ok = await client(r.url, allowed);
    expect(ok.c.serverInfo.version).toBe(2);
    expect(seen[0]).toEqual({ NodePublic: expect.stringMatching(/^nodekey:[0-9a-f]{64}$/), Source: "127.0.0.1" });
    await expect(connectDerp(r.url, { privateKey: random(32), random, timeoutMs: 5000 })).rejects.toThrow(/closed during login/);
    control.close();
    await expect(connectDerp(r.url, { privateKey: allowed, random, timeoutMs: 8000 })).rejects.toThrow(/closed during login/);
    const st = await r.stats();
    expect(st.verify.allowed).toBe(1);
    expect(st.verify.denied).toBe(1);
    expect(st.verify.failed).toBe(1);
    expect(st.derp.admissionsRejected).toBe(2);
  });
});
