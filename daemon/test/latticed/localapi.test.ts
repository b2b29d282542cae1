// The LocalAPI listener against a fake backend: routing, JSON errors with codes, the
// write check by peer uid, the Host check, and a hostile client (garbage, huge headers
// and bodies, bad JSON, wrong methods, slow and idle connections) that the server
// survives and keeps answering after.
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { loadNative } from "@lattice/tun";
import { LatticedError } from "../../src/latticed/errors.js";
import { LocalApiServer, peerUidFrom, type LocalApiBackend, type LocalApiOptions } from "../../src/latticed/localapi.js";
import { defaultPrefs } from "../../src/latticed/prefs.js";

const quiet = { info() {}, warn() {}, error() {} };

function fakeBackend(over: Partial<Record<keyof LocalApiBackend, unknown>> = {}): LocalApiBackend & { calls: string[] } {
  const calls: string[] = [];
  const b = {
    calls,
    status: (peers: boolean) => ({ BackendState: "Running", peers }),
    prefs: () => defaultPrefs(),
    patchPrefs: async (body: unknown) => (calls.push(`patch ${JSON.stringify(body)}`), defaultPrefs()),
    up: async (body: unknown) => (calls.push(`up ${JSON.stringify(body)}`), { BackendState: "Starting", AuthURL: "" }),
    down: async () => void calls.push("down"),
    logout: async () => void calls.push("logout"),
    ping: async (ip: string, type: string, t: number) => ({ IP: ip, type, t }),
    netcheck: async () => ({ UDP: true }),
    whois: (addr: string) => {
      throw new LatticedError("peer_not_found", `no node has ${addr}`);
    },
    bugreport: () => "BUG-x",
    suggestExitNode: () => {
      throw new LatticedError("no_exit_nodes", "no online peer offers an exit node");
    },
    ...over,
  };
  return b as unknown as LocalApiBackend & { calls: string[] };
}

const servers: LocalApiServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function start(o: Partial<LocalApiOptions> & { uid?: number } = {}): Promise<{ sock: string; api: LocalApiServer; backend: ReturnType<typeof fakeBackend> }> {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "latticed-api-"));
  dirs.push(d);
  const sock = path.join(d, "run", "latticed.sock");
  const backend = (o.backend as ReturnType<typeof fakeBackend>) ?? fakeBackend();
  const api = await LocalApiServer.listen({
    socketPath: sock,
    backend,
    version: "9.9.9",
    metrics: () => "m 1\n",
    operatorUid: 1000,
    peerUid: () => o.uid ?? 0,
    log: quiet,
    random: (n) => new Uint8Array(randomBytes(n)),
    ...o,
  });
  servers.push(api);
  return { sock, api, backend };
}

function req(sock: string, method: string, p: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath: sock, method, path: p, headers: { Host: "local-tailscaled.sock", ...headers } }, (res) => {
      let s = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (s += c));
      res.on("end", () => {
        let b: unknown = s;
        try {
          b = JSON.parse(s);
        } catch {
          /* text */
        }
        resolve({ status: res.statusCode ?? 0, body: b, headers: res.headers });
      });
    });
    r.on("error", reject);
    r.end(body);
  });
}

/** Writes raw bytes on a fresh connection; resolves with everything the server sent before closing. */
function raw(sock: string, bytes: string | Buffer, waitMs = 2_000): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    let got = "";
    c.on("data", (d) => (got += d.toString("latin1")));
    c.on("error", () => {});
    c.on("close", () => resolve(got));
    c.write(bytes);
    setTimeout(() => {
      c.destroy();
    }, waitMs);
  });
}

describe("LocalAPI", () => {
  it("serves status, version and metrics to anyone, with a 0666 socket", async () => {
    const { sock } = await start({ uid: 12345 });
    expect(fs.statSync(sock).mode & 0o777).toBe(0o666);
    expect((await req(sock, "GET", "/localapi/v0/status")).body).toEqual({ BackendState: "Running", peers: true });
    expect((await req(sock, "GET", "/localapi/v0/status?peers=false")).body.peers).toBe(false);
    expect((await req(sock, "GET", "/localapi/v0/version")).body).toEqual({ Version: "9.9.9", Daemon: "latticed" });
    const m = await req(sock, "GET", "/localapi/v0/metrics");
    expect(m.headers["content-type"]).toMatch(/^text\/plain/);
  });

  it("refuses writes from a user that is neither root nor the operator (403 forbidden)", async () => {
    const { sock, backend } = await start({ uid: 12345 });
    const r = await req(sock, "POST", "/localapi/v0/up", "{}");
    expect(r.status).toBe(403);
    expect(r.body.code).toBe("forbidden");
    expect(r.body.error).toMatch(/uid 12345/);
    expect(backend.calls).toEqual([]);
  });

  it("lets root and the --operator user write", async () => {
    for (const uid of [0, 1000]) {
      const { sock, backend } = await start({ uid });
      expect((await req(sock, "POST", "/localapi/v0/down")).status).toBe(200);
      expect(backend.calls).toEqual(["down"]);
      await servers.pop()!.close();
    }
  });

  it("refuses a foreign Host header (DNS rebinding) with 403", async () => {
    const { sock } = await start();
    const r = await req(sock, "GET", "/localapi/v0/status", undefined, { Host: "evil.example" });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe("forbidden");
    expect((await req(sock, "GET", "/localapi/v0/status", undefined, { Host: "localhost" })).status).toBe(200);
  });

  it("answers unknown paths 404 and wrong methods 405 with Allow, as JSON with codes", async () => {
    const { sock } = await start();
    const a = await req(sock, "GET", "/localapi/v0/nope");
    expect([a.status, a.body.code]).toEqual([404, "not_found"]);
    const b = await req(sock, "DELETE", "/localapi/v0/prefs");
    expect([b.status, b.body.code, b.headers.allow]).toEqual([405, "method_not_allowed", "GET, PATCH"]);
    const c = await req(sock, "GET", "/localapi/v0/up");
    expect(c.status).toBe(405);
  });

  it("bad JSON and bad query values are 400 bad_request naming the field", async () => {
    const { sock } = await start();
    const a = await req(sock, "POST", "/localapi/v0/up", "{not json");
    expect([a.status, a.body.code]).toEqual([400, "bad_request"]);
    expect(a.body.error).toMatch(/^body: not valid JSON/);
    const b = await req(sock, "GET", "/localapi/v0/ping?ip=100.64.0.2&timeout=abc");
    expect([b.status, b.body.code]).toEqual([400, "bad_request"]);
    expect(b.body.error).toMatch(/^timeout:/);
    const c = await req(sock, "GET", "/localapi/v0/ping?ip=100.64.0.2&type=carrier-pigeon");
    expect(c.body.error).toMatch(/^type:/);
    expect((await req(sock, "GET", "/localapi/v0/ping")).body.error).toMatch(/^ip:/);
    expect((await req(sock, "GET", "/localapi/v0/whois")).body.error).toMatch(/^addr:/);
  });

  it("maps backend errors to their code and status (404 peer_not_found)", async () => {
    const { sock } = await start();
    const r = await req(sock, "GET", "/localapi/v0/whois?addr=100.64.0.9");
    expect([r.status, r.body.code]).toEqual([404, "peer_not_found"]);
  });

  it("suggest-exit-node: the suggestion as JSON for anyone; none is 404 no_exit_nodes; only GET", async () => {
    const none = await start({ uid: 12345 });
    const r = await req(none.sock, "GET", "/localapi/v0/suggest-exit-node");
    expect([r.status, r.body]).toEqual([404, { error: "no online peer offers an exit node", code: "no_exit_nodes" }]);
    expect((await req(none.sock, "POST", "/localapi/v0/suggest-exit-node", "{}")).status).toBe(405);
    const some = await start({ backend: fakeBackend({ suggestExitNode: () => ({ ID: "n3CNTRL", Name: "exit.t.example.", Location: null }) }) as never, uid: 12345 });
    const ok = await req(some.sock, "GET", "/localapi/v0/suggest-exit-node");
    expect([ok.status, ok.body]).toEqual([200, { ID: "n3CNTRL", Name: "exit.t.example.", Location: null }]);
  });

  it("an unexpected backend exception is a 500 internal with a request id and no stack", async () => {
    const { sock } = await start({ backend: fakeBackend({ netcheck: async () => { throw new TypeError("secret detail at /x/y.ts:1"); } }) });
    const r = await req(sock, "GET", "/localapi/v0/netcheck");
    expect([r.status, r.body.code]).toEqual([500, "internal"]);
    expect(r.body.error).toMatch(/request id [0-9a-f]{12}/);
    expect(JSON.stringify(r.body)).not.toMatch(/secret|y\.ts/);
  });

  it("hostile client: garbage, huge headers, huge bodies, slow and idle connections — and still serving", async () => {
    const { sock, api, backend } = await start({ limits: { requestTimeoutMs: 1_000, maxConnections: 8 } });
    // Garbage bytes instead of HTTP.
    expect(await raw(sock, Buffer.from(randomBytes(300)))).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw(sock, "GARBAGE\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    // 20 KiB of headers (limit 16 KiB).
    expect(await raw(sock, `GET /localapi/v0/status HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431/);
    // 100 KiB body (limit 64 KiB), declared and chunked.
    const big = Buffer.alloc(100 * 1024, 0x61);
    const d = await req(sock, "POST", "/localapi/v0/up", big);
    expect([d.status, d.body.code]).toEqual([413, "bad_request"]);
    const chunked = await raw(sock, Buffer.concat([Buffer.from("POST /localapi/v0/up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"), Buffer.from(`${(100 * 1024).toString(16)}\r\n`), big, Buffer.from("\r\n0\r\n\r\n")]));
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    expect(backend.calls).toEqual([]);
    // A slow client that never finishes its headers is cut off after the request timeout.
    const t0 = Date.now();
    const slow = await raw(sock, "GET /localapi/v0/status HTTP/1.1\r\nHost: loc", 5_000);
    expect(Date.now() - t0).toBeLessThan(4_900);
    expect(slow === "" || /^HTTP\/1\.1 408/.test(slow)).toBe(true);
    // More idle connections than the limit: the extra ones are closed, the server survives.
    const idle: net.Socket[] = [];
    for (let i = 0; i < 12; i++) {
      const c = net.connect(sock);
      c.on("error", () => {});
      idle.push(c);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(api.stats.rejectedConnections).toBeGreaterThanOrEqual(4);
    for (const c of idle) c.destroy();
    await new Promise((r) => setTimeout(r, 200));
    // Wrong methods and paths in bulk.
    for (const m of ["PUT", "DELETE", "OPTIONS", "TRACE"]) expect((await req(sock, m, "/localapi/v0/status")).status).toBe(405);
    // Still serving.
    expect((await req(sock, "GET", "/localapi/v0/status")).status).toBe(200);
  }, 20_000);

  it("replaces a stale socket file but refuses to remove a regular file", async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "latticed-api-"));
    dirs.push(d);
    const p = path.join(d, "x.sock");
    fs.writeFileSync(p, "not a socket");
    await expect(start({ socketPath: p })).rejects.toThrowError(/exists and is not a socket/);
  });

  it("reads the caller's uid with SO_PEERCRED through the native addon", async () => {
    const native = loadNative();
    const peerUid = peerUidFrom((fd) => native.peerCred(fd));
    let seen = -1;
    const { sock } = await start({
      peerUid: (s) => {
        seen = peerUid(s);
        return seen;
      },
    });
    await req(sock, "POST", "/localapi/v0/down");
    expect(seen).toBe(process.getuid!());
  });
});
