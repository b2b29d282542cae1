/**
 * A 500 is a bug: its answer must not carry the error's message (paths, SQL, secrets), only a
 * fixed body with a request id, and the real error must be logged with that same id. 4xx
 * answers keep their messages. Guards http/json.ts sendError (main + admin listeners) and
 * nodeapi/http.ts respondError (the node API behind Noise), with a real HTTP/1 and HTTP/2 server.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http2 from "node:http2";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import { createControl, type Control } from "../src/app.js";
import { createMainServer } from "../src/http/server.js";
import { ControlError, ValidationError } from "../src/errors.js";
import { respondError } from "../src/nodeapi/http.js";

const SECRET = "SQLITE_CORRUPT at /var/lib/lattice/secret-path.db password=hunter2";

describe("internal errors answer a generic body with a request id and are logged with it", () => {
  let c: Control | undefined;
  let server: http.Server | undefined;
  let h2: http2.Http2Server | undefined;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await new Promise<void>((r) => (h2 ? h2.close(() => r()) : r()));
    server = h2 = undefined;
    await c?.close();
    c = undefined;
  });

  it("main listener: a 500 ControlError and a plain Error leak nothing; the log has the error and the body's request id; a 4xx keeps its message", async () => {
    c = await createControl({ db: join(mkdtempSync(join(tmpdir(), "lattice-internal-")), "t.db"), options: { serverUrl: "http://control.test" } });
    const logged: Array<{ obj: { err?: unknown; requestId?: string }; msg?: string }> = [];
    const failures: Record<string, unknown> = {
      "/boom-control": new ControlError("db_broken", SECRET, 500),
      "/boom-plain": new Error(SECRET),
      "/boom-string": SECRET,
      "/bad-input": new ValidationError("body.name: must be a DNS label"),
    };
    server = createMainServer(c, {
      log: { error: (obj, msg) => logged.push({ obj: obj as { err?: unknown; requestId?: string }, msg }) },
      preHandlers: [
        (req) => {
          const f = failures[req.url ?? ""];
          if (f !== undefined) throw f;
          return false;
        },
      ],
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const ids = new Set<string>();
    for (const path of ["/boom-control", "/boom-plain", "/boom-string"]) {
      const res = await fetch(base + path);
      const text = await res.text();
      expect(res.status).toBe(500);
      expect(text).not.toContain("SQLITE");
      expect(text).not.toContain("hunter2");
      expect(text).not.toContain("db_broken");
      const body = JSON.parse(text) as { error: { code: string; message: string; requestId: string } };
      expect(body.error.code).toBe("internal");
      expect(body.error.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(body.error.message).toBe(`internal server error (request id ${body.error.requestId})`);
      const entry = logged.find((l) => l.obj.requestId === body.error.requestId);
      expect(entry?.obj.err).toBe(failures[path]);
      ids.add(body.error.requestId);
    }
    expect(ids.size).toBe(3);
    const bad = await fetch(base + "/bad-input");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: { code: "invalid_input", message: "body.name: must be a DNS label" } });
    expect(logged).toHaveLength(3);
  });

  it("node API: a 500 answers {error:'internal error', code:'internal', requestId} and logs the error with that id; a 4xx keeps its message", async () => {
    const logged: Array<{ err: unknown; requestId: string }> = [];
    const failures: Record<string, unknown> = {
      "/machine/map": new ControlError("db_broken", SECRET, 500),
      "/machine/register": new Error(SECRET),
      "/machine/bad": new ControlError("node_key_expired", "node key has expired; re-authenticate", 401),
    };
    h2 = http2.createServer();
    h2.on("stream", (stream, headers) => respondError(stream, failures[String(headers[":path"])], (err, requestId) => logged.push({ err, requestId })));
    await new Promise<void>((r) => h2!.listen(0, "127.0.0.1", () => r()));
    const session = http2.connect(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
    const get = (path: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = session.request({ ":path": path, ":method": "POST" });
        let status = 0;
        let text = "";
        req.on("response", (h) => (status = Number(h[":status"])));
        req.setEncoding("utf8");
        req.on("data", (d: string) => (text += d));
        req.on("end", () => resolve({ status, text }));
        req.on("error", reject);
        req.end();
      });
    try {
      for (const path of ["/machine/map", "/machine/register"]) {
        const { status, text } = await get(path);
        expect(status).toBe(500);
        expect(text).not.toContain("SQLITE");
        expect(text).not.toContain("hunter2");
        const body = JSON.parse(text) as { error: string; code: string; requestId: string };
        expect(body).toEqual({ error: "internal error", code: "internal", requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
        expect(logged.find((l) => l.requestId === body.requestId)?.err).toBe(failures[path]);
      }
      const bad = await get("/machine/bad");
      expect(bad.status).toBe(401);
      expect(JSON.parse(bad.text)).toEqual({ error: "node key has expired; re-authenticate", code: "node_key_expired" });
      expect(logged).toHaveLength(2);
    } finally {
      session.close();
    }
  });
});
