/**
 * Issue 6 findings A2 and A7 against a real `lattice-control` process: every listener
 * answers and closes what it does not serve, times out idle, slow and stalled input
 * (configured short here; no wall-clock assertions), caps connections per source, and
 * the HTTP/2-over-Noise control channel limits and times out its streams. Refusals are
 * counted at the admin socket's `/metrics`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import tls from "node:tls";
import { startServer, TestNode, waitFor, type ServerProc } from "./harness.js";
import { adminJson, h2FrameFlood, idleConnections, openUnknownUpgrades, procStats, slowHeaders, stalledH2Streams, type Hostile } from "./hostile/clients.js";

const metrics = async (s: ServerProc) => (await adminJson(s.socket, "/metrics")).json;

describe("listener limits: unknown upgrades, timeouts, connection caps", () => {
  let s: ServerProc;
  const open: Hostile[] = [];
  beforeAll(async () => {
    s = await startServer({
      env: {
        LATTICE_CONTROL_HEADER_TIMEOUT: "400ms",
        LATTICE_CONTROL_REQUEST_TIMEOUT: "800ms",
        LATTICE_CONTROL_IDLE_TIMEOUT: "400ms",
        LATTICE_CONTROL_MAX_CONNECTIONS_PER_ADDRESS: "40",
      },
    });
  }, 30_000);
  afterEach(() => {
    for (const h of open.splice(0)) h.close();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("an upgrade the server does not serve (websocket on /, h2c, wrong path or method) is answered 400 and closed; fds return to baseline", async () => {
    const before = await procStats(s.proc.pid!);
    const h = openUnknownUpgrades(s.url, 30);
    open.push(h);
    expect(await h.settle((o) => o.closedByServer)).toBe(true);
    expect(h.outcomes.map((o) => o.status)).toEqual(Array(30).fill("HTTP/1.1 400 Bad Request"));
    expect((await metrics(s)).listeners.http.upgradesRefused).toBeGreaterThanOrEqual(30);
    await waitFor(async () => (await procStats(s.proc.pid!)).fds <= before.fds + 2).catch(() => {});
    expect((await procStats(s.proc.pid!)).fds).toBeLessThanOrEqual(before.fds + 2);
  });

  it("CONNECT is answered 405 and closed", async () => {
    const sock = net.connect(s.port, "127.0.0.1");
    let data = "";
    sock.on("data", (d) => (data += d));
    const closed = new Promise<void>((r) => sock.on("close", () => r()));
    sock.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    await closed;
    expect(data.split("\r\n")[0]).toBe("HTTP/1.1 405 Method Not Allowed");
  });

  it("connections that send nothing, trickle headers (slowloris) or never finish the body are cut off by the configured timeouts", async () => {
    const idle = idleConnections(s.url, 5);
    const slow = slowHeaders(s.url, 5, 50);
    open.push(idle, slow);
    const body = openBodyStall(s.port);
    expect(await idle.settle((o) => o.closedByServer)).toBe(true);
    expect(await slow.settle((o) => o.closedByServer)).toBe(true);
    expect(await body.closed).toBe(true);
    expect(slow.outcomes.every((o) => o.status === "HTTP/1.1 408 Request Timeout")).toBe(true);
    expect((await metrics(s)).listeners.http.timeouts).toBeGreaterThanOrEqual(11);
  });

  it("a keep-alive connection idle between requests is closed after the idle timeout", async () => {
    const sock = net.connect(s.port, "127.0.0.1");
    let data = "";
    sock.on("data", (d) => (data += d));
    const closed = new Promise<boolean>((r) => sock.on("close", () => r(true)));
    sock.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(await Promise.race([closed, new Promise((r) => setTimeout(() => r(false), 10_000))])).toBe(true);
    expect(data).toContain('{"ok":true}');
  });

  it("connections beyond the per-source cap are refused at accept and counted; the server still serves", async () => {
    const refusedBefore = (await metrics(s)).listeners.http.connectionsRefused;
    // Unknown-upgrade sockets are answered at once, so hold the cap with half-sent requests.
    const held: net.Socket[] = [];
    for (let i = 0; i < 45; i++) {
      const sock = net.connect(s.port, "127.0.0.1");
      sock.on("error", () => {});
      sock.resume();
      sock.write("GET / HTTP/1.1\r\n");
      held.push(sock);
    }
    try {
      await waitFor(async () => (await metrics(s)).listeners.http.connectionsRefused - refusedBefore >= 5);
      expect((await metrics(s)).listeners.http.connectionsRefused - refusedBefore).toBe(5);
    } finally {
      for (const x of held) x.destroy();
    }
    await waitFor(async () => (await fetch(`${s.url}/health`)).ok);
  });

  it("the admin socket has the same cap and timeouts (one source)", async () => {
    const held: net.Socket[] = [];
    for (let i = 0; i < 45; i++) {
      const sock = net.connect(s.socket);
      sock.on("error", () => {});
      sock.resume();
      sock.write("GET / HTTP/1.1\r\n");
      held.push(sock);
    }
    try {
      await waitFor(async () => held.filter((x) => x.destroyed || x.readableEnded).length >= 45, 10_000);
    } finally {
      for (const x of held) x.destroy();
    }
    const m = (await metrics(s)).listeners.admin;
    expect(m.connectionsRefused).toBeGreaterThanOrEqual(5);
    expect(m.timeouts).toBeGreaterThanOrEqual(1);
    const answer = await exchange(net.connect(s.socket), "GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request");
    expect((await metrics(s)).listeners.admin.upgradesRefused).toBeGreaterThanOrEqual(1);
  });

  it("oversized request headers are answered 431 and closed (not 500, not left open)", async () => {
    const answer = await exchange(net.connect(s.port, "127.0.0.1"), `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 431 Request Header Fields Too Large");
  });
});

/** Writes `request` on `sock` and resolves with everything read until the server closes it (rejects after 10 s). */
function exchange(sock: net.Socket, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    const t = setTimeout(() => (sock.destroy(), reject(new Error(`not closed by the server; got ${JSON.stringify(data.slice(0, 80))}`))), 10_000);
    sock.on("data", (d) => (data += d));
    sock.on("error", () => {});
    sock.on("close", () => (clearTimeout(t), resolve(data)));
    sock.write(request);
  });
}

/** A request whose body never completes; resolves `closed` true when the server closes it (false after 10 s). */
function openBodyStall(port: number): { closed: Promise<boolean> } {
  const sock = net.connect(port, "127.0.0.1");
  sock.on("error", () => {});
  sock.write("POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{");
  const t = setInterval(() => sock.write(" "), 50);
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => (sock.destroy(), resolve(false)), 10_000);
    sock.on("close", () => {
      clearTimeout(timer);
      clearInterval(t);
      resolve(true);
    });
  });
  return { closed };
}

describe("control channel: stalled HTTP/2 streams, stream limit, frame floods", () => {
  let s: ServerProc;
  let authKey: string;
  const open: Array<{ close(): void }> = [];
  beforeAll(async () => {
    s = await startServer({
      env: {
        LATTICE_CONTROL_BODY_TIMEOUT: "300ms",
        LATTICE_CONTROL_CONTROL_IDLE_TIMEOUT: "1500ms",
        // Short HTTP/1.1 timeouts must not touch upgraded control channels.
        LATTICE_CONTROL_HEADER_TIMEOUT: "300ms",
        LATTICE_CONTROL_REQUEST_TIMEOUT: "500ms",
        LATTICE_CONTROL_MAX_STREAMS_PER_CONNECTION: "4",
      },
    });
    expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
    authKey = (await s.cli(["keys", "create", "--user", "alice", "--preapproved", "--reusable"])).stdout.trim();
  }, 30_000);
  afterEach(() => {
    for (const h of open.splice(0)) h.close();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("request bodies that never complete get 408 and are reset; the server counts them", async () => {
    const h = await stalledH2Streams(s.url, 2, 4);
    open.push(h);
    expect(await h.settle((o) => o.closedByServer)).toBe(true);
    expect(h.outcomes.filter((o) => o.status === "408").length).toBe(8);
    expect((await metrics(s)).control.stalledStreams).toBeGreaterThanOrEqual(8);
  });

  it("no more than the configured number of concurrent streams per channel", async () => {
    const h = await stalledH2Streams(s.url, 1, 10);
    open.push(h);
    await waitFor(() => h.clients[0]!.session.remoteSettings.maxConcurrentStreams === 4, 3000);
    // The client queues streams beyond the limit; the server never sees more than 4 at once,
    // and each wave is timed out in turn, so all 10 end.
    expect(await h.settle((o) => o.closedByServer, 15_000)).toBe(true);
  });

  it("PING and SETTINGS floods that never read the acknowledgements end the channel; the server keeps serving", async () => {
    const ping = await h2FrameFlood(s.url, "ping", 100_000);
    expect(ping.closedByServer).toBe(true);
    const settings = await h2FrameFlood(s.url, "settings", 100_000);
    expect(settings.closedByServer).toBe(true);
    expect((await fetch(`${s.url}/health`)).ok).toBe(true);
  });

  it("a legitimate node registers and keeps its map stream while hostile channels are cut off", async () => {
    const hostile = await stalledH2Streams(s.url, 2, 4);
    const upgrades = openUnknownUpgrades(s.url, 10);
    open.push(hostile, upgrades);
    const n = await new TestNode(s.url, "legit").connect();
    open.push(n);
    const r = await n.register({ Auth: { AuthKey: authKey } });
    expect(r.MachineAuthorized).toBe(true);
    const stream = n.map()[Symbol.asyncIterator]();
    expect((await stream.next()).value.Node.Name).toBe("legit.lattice.internal.");
    expect(await hostile.settle((o) => o.closedByServer)).toBe(true);
    expect(await upgrades.settle((o) => o.closedByServer)).toBe(true);
    // The map stream is an active request: its channel outlives the idle timeout.
    await new Promise((res) => setTimeout(res, 2500));
    expect(n.client.closed).toBe(false);
    await stream.return!();
  });
});

describe("control channel: stalled streams count as idle", () => {
  let s: ServerProc;
  const open: Array<{ close(): void }> = [];
  beforeAll(async () => {
    // Bodies may take a minute, but a channel without an active request closes sooner.
    s = await startServer({ env: { LATTICE_CONTROL_BODY_TIMEOUT: "60s", LATTICE_CONTROL_CONTROL_IDLE_TIMEOUT: "500ms" } });
  }, 30_000);
  afterAll(async () => {
    for (const h of open.splice(0)) h.close();
    await s?.stop();
  });

  it("a channel whose only streams are stalled counts as idle and is closed", async () => {
    // Streams the client keeps re-opening stay stalled; the channel must still close.
    const h = await stalledH2Streams(s.url, 3, 2);
    open.push(h);
    await waitFor(() => h.channelsClosed() === 3, 10_000);
    expect((await metrics(s)).control.idleChannelsClosed).toBeGreaterThanOrEqual(3);
  });
});

describe("HTTPS listener: same limits before and after the TLS handshake", () => {
  let s: ServerProc;
  beforeAll(async () => {
    s = await startServer({ args: ["--tls-self-signed"], https: true, env: { LATTICE_CONTROL_HEADER_TIMEOUT: "300ms", LATTICE_CONTROL_MAX_CONNECTIONS_PER_ADDRESS: "3" } });
  }, 30_000);
  afterAll(async () => {
    await s?.stop();
  });
  const tlsConnect = () => tls.connect({ host: "127.0.0.1", port: s.port, rejectUnauthorized: false });

  it("an unknown upgrade over TLS is answered 400 and closed", async () => {
    const answer = await exchange(tlsConnect(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request");
  });

  it("a TCP connection that never starts the TLS handshake is closed by the handshake timeout", async () => {
    const before = (await metrics(s)).listeners.http.timeouts;
    const answer = await exchange(net.connect(s.port, "127.0.0.1"), "");
    expect(answer).toBe("");
    expect((await metrics(s)).listeners.http.timeouts).toBeGreaterThan(before);
  });

  it("the per-source cap applies before TLS", async () => {
    const held = Array.from({ length: 5 }, () => {
      const x = net.connect(s.port, "127.0.0.1");
      x.on("error", () => {});
      x.resume();
      return x;
    });
    try {
      await waitFor(async () => (await metrics(s)).listeners.http.connectionsRefused >= 2);
    } finally {
      for (const x of held) x.destroy();
    }
    expect((await metrics(s)).listeners.http.connectionsRefused).toBe(2);
  });
});
