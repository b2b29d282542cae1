// The embedded SSH server as a hostile client sees it: garbage before and after the SSH
// identification, truncated binary packets, silent connections (handshake timeout) and a
// flood of half-open connections from one source — each is dropped and counted, and an
// honest client from another source keeps getting sessions throughout. Needs root
// (sessions run through setpriv) and the OpenSSH client.
import { randomBytes } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";
import type { ClientChannel } from "ssh2";
import { afterEach, describe, expect, it } from "vitest";
import { requireRoot } from "../netns/run-script.js";
import { acceptPolicy, ssh, ssh2Client, startServer, type Started } from "./harness.js";

let s: Started | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

function open(port: number, localAddress = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const c = connect({ port, host: "127.0.0.1", localAddress });
    c.on("error", () => undefined);
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

function closed(c: Socket, ms = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    if (c.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    c.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
    c.resume();
  });
}

describe("hostile input to the SSH listener", () => {
  it("garbage bytes and a truncated packet after a valid ident are dropped; the server keeps serving", async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    const victims: Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const g = await open(s.port);
      g.write(randomBytes(64 * 1024));
      victims.push(g);
      const t = await open(s.port);
      // Valid identification, then a packet length claiming 2 GiB and junk.
      t.write(Buffer.concat([Buffer.from("SSH-2.0-hostile\r\n"), Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x04]), randomBytes(1000)]));
      victims.push(t);
    }
    for (const v of victims) expect(await closed(v)).toBe(true);
    const r = await ssh(s.port, "root", ["echo alive"]);
    expect(r.stdout).toBe("alive\n");
    expect(s.server.stats.protocolErrors).toBeGreaterThan(0);
  });

  it("a connection that never completes the handshake is closed after handshakeTimeoutMs", async () => {
    requireRoot();
    s = await startServer(acceptPolicy(), { handshakeTimeoutMs: 300 });
    const silent = await open(s.port);
    const identOnly = await open(s.port);
    identOnly.write("SSH-2.0-slowpoke\r\n");
    expect(await closed(silent, 5000)).toBe(true);
    expect(await closed(identOnly, 5000)).toBe(true);
    expect(s.server.stats.handshakeTimeouts).toBe(2);
  });

  it("a flood of half-open connections from one source is capped per source; other sources still get in", async () => {
    requireRoot();
    s = await startServer(acceptPolicy(), { maxUnauthenticatedPerSource: 8 });
    const flood: Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const c = await open(s.port, "127.0.0.2");
      c.write("SSH-2.0-flood\r\n");
      flood.push(c);
    }
    const refused = (await Promise.all(flood.map((c) => closed(c, 2000)))).filter(Boolean).length;
    expect(refused).toBe(192);
    expect(s.server.stats.refusedOverLimit).toBe(192);
    const r = await ssh(s.port, "root", ["echo still-serving"]);
    expect(r.stdout).toBe("still-serving\n");
    for (const c of flood) c.destroy();
  });

  it("-L channels per connection are capped (maxLocalForwardsPerConnection); closing one frees a slot", async () => {
    requireRoot();
    s = await startServer(acceptPolicy(), { maxLocalForwardsPerConnection: 3 });
    const target = createServer((c) => c.on("error", () => undefined));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", () => r()));
    const tport = (target.address() as { port: number }).port;
    const c = ssh2Client();
    try {
      await new Promise<void>((resolve, reject) => {
        c.on("error", reject);
        c.on("ready", () => resolve());
        c.connect({ host: "127.0.0.1", port: s!.port, username: "root" });
      });
      const open = (): Promise<ClientChannel | Error> =>
        new Promise((resolve) => c.forwardOut("127.0.0.1", 1, "127.0.0.1", tport, (err, ch) => resolve(err ?? ch)));
      const chans: (ClientChannel | Error)[] = [];
      for (let i = 0; i < 4; i++) chans.push(await open());
      expect(chans.slice(0, 3).every((x) => !(x instanceof Error))).toBe(true);
      expect(chans[3]).toBeInstanceOf(Error);
      (chans[0] as ClientChannel).close();
      await new Promise((r) => setTimeout(r, 200));
      expect(await open()).not.toBeInstanceOf(Error);
    } finally {
      c.end();
      target.close();
    }
  });
});
