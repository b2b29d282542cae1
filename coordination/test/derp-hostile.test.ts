/**
 * Hostile clients on the DERP port of a running lattice-control (the embedded relay
 * shares the HTTP listener): random bytes after connect, bad upgrades, garbage and
 * truncated frames after a good upgrade, a silent upgraded socket, more connections than
 * the per-source cap. The server answers or closes each one and keeps serving DERP.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { x25519PublicKey } from "@lattice/crypto";
import { connectDerp, encodeFrame, FrameType, keyEqual, type DerpMessage } from "@lattice/derp";
import { formatKey } from "@lattice/types";
import { startServer, TestNode, waitFor, type ServerProc } from "./harness.js";

const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

/** Writes `chunks` on a fresh connection (optionally ending the write side); resolves with everything read until close. */
function hostile(port: number, chunks: Array<string | Uint8Array>, o: { end?: boolean; maxMs?: number } = {}): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((res) => {
    const sock = net.connect(port, "127.0.0.1");
    let text = "";
    let closedByServer = true;
    const t = setTimeout(() => {
      closedByServer = false;
      sock.destroy();
    }, o.maxMs ?? 15_000);
    sock.on("data", (c) => (text += c.toString("latin1")));
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(t);
      res({ text, closedByServer });
    });
    sock.on("connect", () => {
      for (const c of chunks) sock.write(c);
      if (o.end) sock.end();
    });
  });
}

const UPGRADE = "GET /derp HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: DERP\r\nDerp-Fast-Start: 1\r\n\r\n";

describe("garbage at lattice-control's DERP port", () => {
  let s: ServerProc;
  let priv: Uint8Array;
  beforeAll(async () => {
    s = await startServer({ env: { LATTICE_CONTROL_MAX_CONNECTIONS_PER_ADDRESS: "24" } });
    expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
    const k = (await s.cli(["keys", "create", "--user", "alice", "--preapproved", "--reusable"])).stdout.trim();
    priv = random(32);
    const n = await new TestNode(s.url, "hostile-victim").connect();
    n.nodeKey = formatKey("node", x25519PublicKey(priv));
    await n.register({ Auth: { AuthKey: k } });
    n.close();
  });
  afterAll(async () => {
    await s?.stop();
  });

  /** A node can still log in to the relay and get a packet relayed to itself. */
  async function stillServing(): Promise<void> {
    const c = await connectDerp(s.url, { privateKey: priv, random, timeoutMs: 5000 });
    try {
      const got: DerpMessage[] = [];
      c.onMessage((m) => got.push(m));
      c.send(c.client.publicKey, Uint8Array.of(7));
      await waitFor(() => got.some((m) => m.kind === "packet" && keyEqual(m.source, c.client.publicKey)) || null);
    } finally {
      c.close();
    }
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  }

  it("random bytes, bad upgrades and garbage after the upgrade are answered or closed; the relay keeps serving", async () => {
    const results = await Promise.all([
      hostile(s.port, [random(300)]),
      hostile(s.port, ["GET /derp HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"]),
      hostile(s.port, ["GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: DERP\r\n\r\n"]),
      hostile(s.port, ["GET /derp HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: DERP\r\nContent-Length: zzz\r\n\r\n"]),
      // After a good upgrade: raw garbage; a frame announcing 2 GiB; a ClientInfo that is not a box; a truncated frame then hang-up.
      hostile(s.port, [UPGRADE, random(500)]),
      hostile(s.port, [UPGRADE, Uint8Array.of(FrameType.ClientInfo, 0x7f, 0xff, 0xff, 0xff)]),
      hostile(s.port, [UPGRADE, encodeFrame(FrameType.ClientInfo, random(120))]),
      // A client that half-closes must not linger until the 10 s login timeout.
      hostile(s.port, [UPGRADE, encodeFrame(FrameType.ClientInfo, random(120)).subarray(0, 40)], { end: true, maxMs: 3000 }),
      hostile(s.port, [UPGRADE, encodeFrame(FrameType.SendPacket, random(40))]),
    ]);
    expect(results[0]!.text).toMatch(/^(HTTP\/1\.1 400 |$)/);
    expect(results[1]!.text).toMatch(/^HTTP\/1\.1 426 /);
    expect(results[2]!.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(results[3]!.text).toMatch(/^(HTTP\/1\.1 400 |$)/);
    for (const r of results) expect(r.closedByServer).toBe(true);
    // The DERP ones were served (ServerKey first; fast start: no 101), then closed. A close
    // with our garbage unread resets the connection, which may discard the ServerKey bytes.
    for (const r of results.slice(4)) expect(r.text === "" || r.text.charCodeAt(0) === FrameType.ServerKey).toBe(true);
    await stillServing();
  });

  it("an upgraded socket that never logs in is closed by the login timeout (10 s)", async () => {
    const r = await hostile(s.port, [UPGRADE], { maxMs: 14_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.text.charCodeAt(0)).toBe(FrameType.ServerKey);
    await stillServing();
  }, 30_000);

  it("DERP connections count against the per-source connection cap", async () => {
    const socks: net.Socket[] = [];
    try {
      for (let i = 0; i < 24; i++) {
        const sock = net.connect(s.port, "127.0.0.1");
        sock.on("error", () => {});
        await new Promise<void>((r) => sock.once("connect", () => r()));
        sock.write(UPGRADE);
        socks.push(sock);
      }
      const extra = await hostile(s.port, [UPGRADE], { maxMs: 5000 });
      expect(extra.closedByServer).toBe(true);
      expect(extra.text).toBe("");
    } finally {
      for (const x of socks) x.destroy();
    }
    await waitFor(async () => {
      try {
        await stillServing();
        return true;
      } catch {
        return false;
      }
    }, 10_000, 200);
  });
});
