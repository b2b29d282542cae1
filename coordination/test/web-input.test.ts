/**
 * Issue 6 findings A3 (open redirect after login), A11 (malformed input gave 500) and
 * A13 (login throttling locked out a whole NAT) against a real `lattice-control`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import net from "node:net";
import { startServer, type ServerProc } from "./harness.js";

/** One raw HTTP/1.1 exchange (so nothing normalizes the request target); returns the status line. */
function rawRequest(target: { port: number } | { socket: string }, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = "port" in target ? net.connect(target.port, "127.0.0.1") : net.connect(target.socket);
    let data = "";
    sock.on("data", (d) => (data += d));
    sock.on("error", reject);
    sock.on("close", () => resolve(data));
    sock.write(request);
  });
}
const statusOf = (answer: string) => Number(answer.split(" ")[1]);

describe("web and REST input (real server)", () => {
  let s: ServerProc;
  let apiKey: string;
  beforeAll(async () => {
    s = await startServer();
    expect((await s.cli(["users", "create", "alice", "--password", "correct horse"])).code).toBe(0);
    expect((await s.cli(["users", "create", "bob", "--password", "battery staple"])).code).toBe(0);
    apiKey = (await s.cli(["apikeys", "create"])).stdout.trim();
  }, 30_000);
  afterAll(async () => {
    await s?.stop();
  });

  /** GET /login (optionally with ?next=) and return the form's csrf cookie, token and hidden next. */
  const loginForm = async (query = "") => {
    const form = await fetch(`${s.url}/login${query}`);
    const cookie = form.headers.get("set-cookie")!.split(";")[0]!;
    const html = await form.text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    const next = /name="next" value="([^"]*)"/.exec(html)![1]!.replace(/&amp;/g, "&").replace(/&#39;/g, "'").replace(/&quot;/g, '"');
    return { cookie, csrf, next };
  };
  const postLogin = async (username: string, password: string, next: string) => {
    const f = await loginForm();
    return fetch(`${s.url}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: f.cookie },
      body: new URLSearchParams({ csrf: f.csrf, next, username, password }).toString(),
    });
  };

  it("a cookie with a bad percent-escape does not break any page (never 500)", async () => {
    const cookies = ["x=%E0%A4%A", "x=%", "x=%zz", "lattice_session=%E0%A4%A", "lattice_csrf=%C3%28", "lattice_oidc=%"];
    for (const cookie of cookies) {
      for (const path of ["/", "/login", "/register/abcdefgh1234"]) {
        const r = await fetch(`${s.url}${path}`, { headers: { cookie }, redirect: "manual" });
        expect(r.status, `${cookie} on ${path}`).toBeLessThan(500);
      }
      const post = await fetch(`${s.url}/login`, { method: "POST", headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: "username=a&password=b" });
      expect(post.status, `${cookie} on POST /login`).toBe(403);
    }
  });

  it("a bad escape in a REST path parameter is a 400 naming the parameter, on both listeners", async () => {
    for (const [method, path] of [["DELETE", "/users/%E0%A4%A"], ["GET", "/nodes/%zz"], ["POST", "/keys/%/revoke"], ["DELETE", "/apikeys/a%C3%28"]]) {
      const answer = await rawRequest({ port: s.port }, `${method} /api/v1${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKey}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      expect(statusOf(answer), `${method} ${path}: ${answer}`).toBe(400);
      expect(answer).toContain('"code":"bad_path_parameter"');
      const admin = await rawRequest({ socket: s.socket }, `${method} /api/v1${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      expect(statusOf(admin), `admin ${method} ${path}: ${admin}`).toBe(400);
    }
  });

  it("malformed request targets are 400s (or an honest 404), never 500, and `//x/` is not the page `/`", async () => {
    for (const target of ["http://[", "*", "//", "http://["]) {
      const answer = await rawRequest({ port: s.port }, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(statusOf(answer), `${target}: ${answer.split("\r\n")[0]}`).toBeGreaterThanOrEqual(400);
      expect(statusOf(answer), `${target}: ${answer.split("\r\n")[0]}`).toBeLessThan(500);
      const admin = await rawRequest({ socket: s.socket }, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(statusOf(admin)).toBeLessThan(500);
    }
    expect(statusOf(await rawRequest({ port: s.port }, `GET //evil.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))).toBe(404);
  });

  it("after login, `next` only ever leads to a path on the server's own origin", async () => {
    const origin = new URL(s.url).origin;
    // The reported case: the query decodes %09 to a TAB, which browsers strip → //evil.example/x.
    const reported = await loginForm("?next=/%09/evil.example/x");
    expect(reported.next).toBe("/");
    const hostile = ["/\t/evil.example/x", "//evil.example", "/\\evil.example", "\\\\evil.example", "/.//evil.example", "https://evil.example/", "/\r\n/evil.example", " //evil.example", "/%09/evil.example/x"];
    for (const next of hostile) {
      const r = await postLogin("alice", "correct horse", next);
      expect(r.status).toBe(303);
      const location = r.headers.get("location")!;
      expect(location.startsWith("/") && !location.startsWith("//") && !/[\\\s]/.test(location), `${JSON.stringify(next)} → ${JSON.stringify(location)}`).toBe(true);
      expect(new URL(location, s.url).origin).toBe(origin);
    }
    const ok = await postLogin("alice", "correct horse", "/register/abcdefgh1234?x=1");
    expect(ok.headers.get("location")).toBe("/register/abcdefgh1234?x=1");
  });

  it("one account's failed logins do not lock out other accounts behind the same address", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await postLogin("alice", `wrong-${i}`, "/")).status);
    expect(statuses).toEqual(Array(10).fill(401));
    const locked = await postLogin("alice", "correct horse", "/");
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await locked.text()).toContain("Too many failed attempts for &quot;alice&quot;");
    // Same address, another account: unaffected.
    expect((await postLogin("bob", "battery staple", "/")).status).toBe(303);
    expect((await postLogin("Alice", "correct horse", "/")).status).toBe(429);
  });

  it("the server is still healthy", async () => {
    const h = await new Promise<number>((resolve) => http.get(`${s.url}/health`, (r) => (r.resume(), resolve(r.statusCode ?? 0))));
    expect(h).toBe(200);
  });
});
