import { createSocket } from "node:dgram";
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { connectDerp, DerpClient, encodeFrame, keyEqual, type DerpConnection, type DerpMessage } from "@lattice/derp";
import { createBindingRequest, parseBindingResponse } from "@lattice/stun";
import { random, startRelayProc, waitFor, type RelayProc } from "./harness.js";

const procs: RelayProc[] = [];
const conns: DerpConnection[] = [];
const socks: Socket[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.close();
  for (const s of socks.splice(0)) s.destroy();
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});

async function client(url: string): Promise<{ c: DerpConnection; msgs: DerpMessage[] }> {
  const c = await connectDerp(url, { privateKey: random(32), random });
  conns.push(c);
  const msgs: DerpMessage[] = [];
  c.onMessage((m) => msgs.push(m));
  return { c, msgs };
}

/** A raw TCP socket that did the HTTP upgrade with Derp-Fast-Start; resolves once connected. */
function rawUpgraded(port: number): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect(port, "127.0.0.1", () => {
      s.write("GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n");
      res(s);
    });
    s.on("error", rej);
    s.resume(); // read (and discard) whatever the relay sends, so its close is seen
    socks.push(s);
  });
}

const closed = (s: Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once("close", () => r())));
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

async function stillServes(r: RelayProc): Promise<void> {
  const a = await client(r.url);
  const b = await client(r.url);
  await waitFor("a packet after the attack", () => {
    a.c.send(b.c.client.publicKey, Uint8Array.of(9));
    return b.msgs.some((m) => m.kind === "packet" && keyEqual(m.source, a.c.client.publicKey));
  });
}

describe("lattice-derp against hostile clients", () => {
  it("garbage instead of ClientInfo, an oversized frame header and non-HTTP bytes are dropped and counted; the relay keeps serving", async () => {
    const r = await relay();
    const g = await rawUpgraded(r.derpPort);
    g.write(encodeFrame(0x04, random(100))); // a SendPacket before logging in
    await closed(g);
    const big = await rawUpgraded(r.derpPort);
    big.write(Uint8Array.from([0x04, 0x7f, 0xff, 0xff, 0xff]));
    await closed(big);
    // A logged-in client that then sends an oversized SendPacket (64 KiB + 1).
    const evil = await rawUpgraded(r.derpPort);
    const core = new DerpClient({ privateKey: random(32), random });
    evil.on("data", (b: Buffer) => {
      core.receive(b);
      for (const f of core.takeOutput()) evil.write(f);
      if (core.loggedIn) evil.write(encodeFrame(0x04, new Uint8Array(32 + 65537)));
    });
    await closed(evil);
    const http = connect(r.derpPort, "127.0.0.1");
    http.on("error", () => {});
    http.resume();
    socks.push(http);
    http.write(Buffer.from(random(3000)));
    await closed(http);
    const st = await r.stats();
    expect(st.derp.protocolErrors.ERR_DERP_FRAME_TOO_LARGE).toBe(2);
    expect(st.derp.protocolErrors.ERR_DERP_BAD_HANDSHAKE).toBe(1);
    expect(st.derp.closedProtocolError).toBe(3);
    expect(st.derp.currentClients).toBe(0);
    await stillServes(r);
  });

  it("fuzz: random byte streams on the DERP port (after the upgrade and as raw HTTP) never crash it", async () => {
    const r = await relay();
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(fc.uint8Array({ minLength: 1, maxLength: 2000 }), { minLength: 1, maxLength: 4 }), async (upgrade, chunks) => {
        const s = upgrade ? await rawUpgraded(r.derpPort) : connect(r.derpPort, "127.0.0.1");
        s.on("error", () => {});
        s.resume();
        socks.push(s);
        for (const c of chunks) s.write(c);
        await new Promise((res) => setTimeout(res, 5));
        s.destroy();
      }),
      { numRuns: 60 },
    );
    expect(r.proc.exitCode).toBeNull();
    await stillServes(r);
  }, 60_000);

  it("STUN port: 500 random datagrams are dropped and counted; a real Binding request is still answered", async () => {
    const r = await relay();
    const sock = createSocket("udp4");
    await new Promise<void>((res) => sock.bind(0, "127.0.0.1", () => res()));
    try {
      const garbage = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 600 }), 500);
      for (let i = 0; i < garbage.length; i++) {
        sock.send(garbage[i]!, r.stunPort!, "127.0.0.1");
        if (i % 25 === 24) await new Promise((res) => setTimeout(res, 10)); // pace: don't overflow the receive buffer
      }
      const st = await waitFor("drops counted", async () => {
        const s = await r.stats();
        const n = Object.values(s.stun.dropped as Record<string, number>).reduce((a, b) => a + b, 0);
        return n >= 400 ? s : null; // UDP may lose a few under load; the relay must count what arrives
      });
      expect(st.stun.responses).toBe(0);
      const { packet } = createBindingRequest(random);
      const reply = new Promise<Buffer>((res) => sock.on("message", (m) => res(m)));
      sock.send(packet, r.stunPort!, "127.0.0.1");
      expect(parseBindingResponse(await reply).ok).toBe(true);
      expect(r.proc.exitCode).toBeNull();
    } finally {
      sock.close();
    }
  });

  it("a slow reader: its queue drops the oldest packets (counted) and the write timeout closes it; the sender is unaffected", async () => {
    const r = await relay();
    const fast = await client(r.url);
    const slow = await client(r.url);
    slow.c.pause();
    const pkt = new Uint8Array(16 << 10);
    const st = await waitFor("write timeout", async () => {
      for (let i = 0; i < 200; i++) fast.c.send(slow.c.client.publicKey, pkt);
      await new Promise((res) => setTimeout(res, 20));
      const s = await r.stats();
      return s.derp.closedWriteTimeout >= 1 ? s : null;
    }, 30_000);
    expect(st.derp.dropQueueHead).toBeGreaterThan(0);
    expect(st.derp.currentClients).toBe(1);
    const other = await client(r.url);
    await waitFor("the fast client still reaches others", () => {
      fast.c.send(other.c.client.publicKey, Uint8Array.of(5));
      return other.msgs.some((m) => m.kind === "packet");
    });
  }, 60_000);

  it("too many connections: beyond --max-connections they are refused, fds stay bounded, silent ones time out, and it serves afterwards", async () => {
    const r = await relay(["--max-connections", "40"]);
    const pid = r.proc.pid!;
    const before = fdCount(pid);
    const opened: Socket[] = [];
    let closedCount = 0;
    for (let i = 0; i < 300; i++) {
      const s = connect(r.derpPort, "127.0.0.1");
      s.on("error", () => {});
      s.on("close", () => closedCount++);
      s.resume(); // read (and discard) so EOF is seen
      socks.push(s);
      opened.push(s);
      if (i % 2 === 0) s.write("GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"); // upgraded, never logs in
    }
    await new Promise((res) => setTimeout(res, 1500));
    const during = fdCount(pid);
    expect(during - before).toBeLessThanOrEqual(40 + 5);
    // The relay closes everything by itself: refused ones at once, silent upgraded sockets
    // at the 10 s login deadline, silent HTTP ones at the 10 s headers timeout.
    await waitFor("every connection closed by the relay", () => closedCount === 300, 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}: ${closedCount} of 300 closed`);
    });
    const st = await r.stats();
    expect(st.derp.closedHandshakeTimeout).toBeGreaterThanOrEqual(1);
    expect(st.derp.currentClients).toBe(0);
    await waitFor("fds back to normal", () => fdCount(pid) <= before + 2, 10_000);
    await stillServes(r);
  }, 60_000);
});

async function relay(args: string[] = []): Promise<RelayProc> {
  const p = await startRelayProc(args);
  procs.push(p);
  return p;
}
