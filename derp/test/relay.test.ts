import { createSocket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { connectDerp, keyEqual, type DerpConnection, type DerpMessage } from "@lattice/derp";
import { createBindingRequest, parseBindingResponse } from "@lattice/stun";
import { random, startRelayProc, waitFor, type RelayProc } from "./harness.js";

const procs: RelayProc[] = [];
const conns: DerpConnection[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.close();
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});

async function relay(args: string[] = [], o: { https?: boolean } = {}): Promise<RelayProc> {
  const p = await startRelayProc(args, o);
  procs.push(p);
  return p;
}

async function client(url: string, extra: { fastStart?: boolean; insecureSkipVerify?: boolean } = {}): Promise<{ c: DerpConnection; msgs: DerpMessage[] }> {
  const c = await connectDerp(url, { privateKey: random(32), random, ...extra });
  conns.push(c);
  const msgs: DerpMessage[] = [];
  c.onMessage((m) => msgs.push(m));
  return { c, msgs };
}

const gotPacket = (msgs: DerpMessage[], from: Uint8Array, byte: number): boolean =>
  msgs.some((m) => m.kind === "packet" && keyEqual(m.source, from) && m.data[0] === byte);

describe("lattice-derp (real process, real TCP)", () => {
  it("two clients exchange packets over GET /derp (101 and Derp-Fast-Start); Ping gets Pong", async () => {
    const r = await relay();
    const a = await client(r.url);
    const b = await client(r.url, { fastStart: true });
    expect(keyEqual(a.c.serverKey, b.c.serverKey)).toBe(true);
    expect(a.c.serverInfo.version).toBe(2);
    a.c.send(b.c.client.publicKey, Uint8Array.of(1, 2, 3));
    b.c.send(a.c.client.publicKey, Uint8Array.of(4));
    await waitFor("packets both ways", () => gotPacket(b.msgs, a.c.client.publicKey, 1) && gotPacket(a.msgs, b.c.client.publicKey, 4));
    a.c.ping(Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1));
    await waitFor("pong", () => a.msgs.some((m) => m.kind === "pong" && m.data[0] === 8));
    const s = await r.stats();
    expect(s.derp.currentClients).toBe(2);
    expect(s.derp.packetsRecv).toBe(2);
  });

  it("a burst from one sender to a reading receiver is relayed whole (no queue drops from 64 KiB reads)", async () => {
    const r = await relay();
    const a = await client(r.url);
    const b = await client(r.url);
    const pkt = new Uint8Array(1200);
    for (let i = 0; i < 200; i++) a.c.send(b.c.client.publicKey, pkt);
    await waitFor("200 packets", () => b.msgs.filter((m) => m.kind === "packet").length === 200, 5000).catch(() => {});
    const st = await r.stats();
    expect(st.derp.dropQueueHead).toBe(0);
    expect(b.msgs.filter((m) => m.kind === "packet")).toHaveLength(200);
  });

  it("serves /derp/probe, /generate_204 (with the challenge echo) and refuses /derp without the upgrade (426)", async () => {
    const r = await relay();
    const probe = await fetch(`${r.url}/derp/probe`);
    expect(probe.status).toBe(200);
    expect(probe.headers.get("access-control-allow-origin")).toBe("*");
    expect((await fetch(`${r.url}/derp/probe`, { method: "POST" })).status).toBe(405);
    const g = await fetch(`${r.url}/generate_204`, { headers: { "X-Tailscale-Challenge": "abc123" } });
    expect(g.status).toBe(204);
    expect(g.headers.get("x-tailscale-response")).toBe("response abc123");
    const bad = await fetch(`${r.url}/generate_204`, { headers: { "X-Tailscale-Challenge": "a b<" } });
    expect(bad.headers.get("x-tailscale-response")).toBeNull();
    expect((await fetch(`${r.url}/derp`)).status).toBe(426);
    expect((await fetch(`${r.url}/nope`)).status).toBe(404);
  });

  it("--self-signed serves DERP over HTTPS", async () => {
    const r = await relay(["--self-signed"], { https: true });
    const a = await client(r.url, { insecureSkipVerify: true });
    const b = await client(r.url, { insecureSkipVerify: true, fastStart: true });
    a.c.send(b.c.client.publicKey, Uint8Array.of(77));
    await waitFor("packet over TLS", () => gotPacket(b.msgs, a.c.client.publicKey, 77));
    await expect(connectDerp(r.url, { privateKey: random(32), random, timeoutMs: 3000 })).rejects.toThrow(/ERR_DERP_CONNECT|certificate/);
  });

  it("answers a STUN Binding request with the client's address (client from @lattice/stun)", async () => {
    const r = await relay();
    const sock = createSocket("udp4");
    await new Promise<void>((res) => sock.bind(0, "127.0.0.1", () => res()));
    try {
      const { transactionId, packet } = createBindingRequest(random, { software: "lattice-test" });
      const reply = new Promise<Buffer>((res) => sock.once("message", (m) => res(m)));
      sock.send(packet, r.stunPort!, "127.0.0.1");
      sock.send(Buffer.from("garbage that is not STUN"), r.stunPort!, "127.0.0.1");
      const resp = parseBindingResponse(await reply);
      expect(resp.ok).toBe(true);
      if (!resp.ok) return;
      expect(Buffer.from(resp.value.transactionId).equals(Buffer.from(transactionId))).toBe(true);
      expect(resp.value.mapped).toEqual({ family: 4, ip: Uint8Array.from([127, 0, 0, 1]), port: sock.address().port });
      const s = await waitFor("drop counted", async () => {
        const st = await r.stats();
        return st.stun.dropped.ERR_STUN_NOT_STUN === 1 ? st : null;
      });
      expect(s.stun.responses).toBe(1);
    } finally {
      sock.close();
    }
  });

  it("bad flags: clear message naming flag and value, exit code 2, nothing started", async () => {
    const { spawnSync } = await import("node:child_process");
    const { MAIN } = await import("./harness.js");
    for (const [args, want] of [
      [["--listen", "nonsense"], /--listen "nonsense": want HOST:PORT/],
      [["--stun-port", "99999"], /--stun-port "99999"/],
      [["--cert", "/x.pem"], /--cert and --key go together/],
      [["--verify-clients"], /--verify-clients .*needs --control-url/],
      [["--mesh-with", "ftp://x"], /--mesh-with "ftp:\/\/x": scheme must be https or http \(item 1\)/],
      [["--mesh-key-file", "/nonexistent/key"], /--mesh-key-file "\/nonexistent\/key": cannot read/],
    ] as const) {
      const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: 10_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(want);
    }
  });
});
