/**
 * Issue 11, acceptance 4 (operability), against the real server process: the log has one
 * line per registration, refusal, policy change and admin action; the audit log is kept in
 * the database and exported by `lattice-control audit [--since] [--json]` and REST; API
 * keys work as HTTP Basic user; `/healthz`; `--version`.
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startServer, TestNode, waitFor, type ServerProc } from "./harness.js";

interface LogLine {
  msg: string;
  level: number;
  [k: string]: unknown;
}

describe("operability (issue 11)", () => {
  let s: ServerProc;
  const nodes: TestNode[] = [];
  const logLines = (): LogLine[] =>
    s
      .stdout()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as LogLine);

  beforeAll(async () => {
    s = await startServer({ env: { LATTICE_CONTROL_LOG_LEVEL: "info" } });
    expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("logs one line per registration, refusal, policy change and admin action", async () => {
    expect(logLines().some((l) => l.msg === "lattice-control started")).toBe(true);
    const key = (await s.cli(["keys", "create", "--user", "alice"])).stdout.trim();
    const ok = await new TestNode(s.url, "logged-ok").connect();
    const bad = await new TestNode(s.url, "logged-bad").connect();
    nodes.push(ok, bad);
    await ok.register({ Auth: { AuthKey: key } } as never);
    await expect(bad.register({ Auth: { AuthKey: "lkey-000000000000-nonexistentsecret00" } } as never)).rejects.toMatchObject({ status: 401 });
    const pol = `${s.dir}/p.hujson`;
    writeFileSync(pol, `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`);
    expect((await s.cli(["policy", "set", pol])).code).toBe(0);
    expect((await s.cli(["nodes", "approve", "logged-ok"])).code).toBe(0);
    await waitFor(() => logLines().filter((l) => l.msg === "admin action").length >= 3);
    const lines = logLines();
    const regs = lines.filter((l) => (l.registration as any)?.hostname === "logged-ok");
    expect(regs).toHaveLength(1);
    expect(regs[0]!.msg).toBe("registration accepted, waiting for approval");
    const refused = lines.filter((l) => (l.registration as any)?.hostname === "logged-bad");
    expect(refused).toHaveLength(1);
    expect(refused[0]!.msg).toMatch(/^registration refused: /);
    expect((refused[0]!.registration as any).code).toBeTruthy();
    const admin = lines.filter((l) => l.msg === "admin action").map((l) => (l.audit as any).action);
    expect(admin.filter((a) => a === "policy.set")).toHaveLength(1);
    expect(admin.filter((a) => a === "node.approve")).toHaveLength(1);
    expect(admin.filter((a) => a === "authkey.create")).toHaveLength(1);
    // No secret in the log: the auth key appears nowhere.
    expect(s.stdout()).not.toContain(key);
  });

  it("logs map streams opening and closing", async () => {
    const n = nodes[0]!;
    const it = n.map()[Symbol.asyncIterator]();
    await it.next();
    await waitFor(() => logLines().some((l) => l.msg === "map stream opened"));
    await it.return!();
    n.close();
    await waitFor(() => logLines().some((l) => l.msg === "map stream closed"), 10_000);
    const opened = logLines().filter((l) => l.msg === "map stream opened");
    expect(opened).toHaveLength(1);
    expect((opened[0]!.mapStream as any).nodeId).toBeTypeOf("number");
  });

  it("exports the audit log as JSON lines, with --since, and names bad input", async () => {
    const r = await s.cli(["audit", "--json"]);
    expect(r.code).toBe(0);
    const entries = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(entries.map((e) => e.action)).toEqual(["user.create", "authkey.create", "policy.set", "node.approve"]);
    expect(entries.every((e) => e.actor === "admin-socket" && e.source === "admin-socket")).toBe(true);
    const policy = entries.find((e) => e.action === "policy.set");
    expect(policy.details.diff).toContain("+{\"acls\": [{\"action\": \"accept\"");
    expect(policy.details.diff).toContain("-// Default policy");
    expect((await s.cli(["audit", "--json", "--since", "1h"])).stdout.trim().split("\n")).toHaveLength(4);
    expect((await s.cli(["audit", "--json", "--since", "2999-01-01"])).stdout).toBe("");
    const human = await s.cli(["audit"]);
    expect(human.stdout).toMatch(/WHEN\s+WHO\s+ACTION\s+TARGET\s+FROM/);
    expect(human.stdout).toMatch(/just now.*admin-socket\s+node\.approve\s+logged-ok/);
    const badSince = await s.cli(["audit", "--since", "yesterday"]);
    expect(badSince.code).not.toBe(0);
    expect(badSince.stderr).toContain(`since: "yesterday" is neither a date`);
  });

  it("accepts API keys as HTTP Basic user and audits REST changes by key", async () => {
    const key = (await s.cli(["apikeys", "create", "--description", "ops"])).stdout.trim();
    const basic = `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
    const list = await fetch(`${s.url}/api/v1/nodes`, { headers: { authorization: basic } });
    expect(list.status).toBe(200);
    const wrong = await fetch(`${s.url}/api/v1/nodes`, { headers: { authorization: `Basic ${Buffer.from("lapi-000000000000-nope00000000000000:").toString("base64")}` } });
    expect(wrong.status).toBe(401);
    const exp = await fetch(`${s.url}/api/v1/nodes/logged-ok/disable-expiry`, { method: "POST", headers: { authorization: basic, "content-type": "application/json" }, body: "{}" });
    expect(exp.status).toBe(200);
    const page = await (await fetch(`${s.url}/api/v1/audit?limit=1`, { headers: { authorization: basic } })).json();
    expect(page.entries[0]).toMatchObject({ action: "node.disable-expiry", target: "logged-ok", actor: `api-key ${key.split("-")[1]}`, source: "127.0.0.1" });
    expect(page.next).toBeTypeOf("number");
    const older = await (await fetch(`${s.url}/api/v1/audit?limit=1&before=${page.next}`, { headers: { authorization: basic } })).json();
    expect(older.entries[0].action).toBe("apikey.create");
    const bad = await fetch(`${s.url}/api/v1/audit?limit=0`, { headers: { authorization: basic } });
    expect(bad.status).toBe(400);
  });

  it("policy over REST as raw huJSON round-trips byte for byte", async () => {
    const key = (await s.cli(["apikeys", "create"])).stdout.trim();
    const text = `// raw huJSON, comments kept\n{\n  "acls": [\n    {"action": "accept", "src": ["*"], "dst": ["*:*"]}, // all\n  ],\n}\n`;
    const put = await fetch(`${s.url}/api/v1/policy`, { method: "PUT", headers: { authorization: `Bearer ${key}`, "content-type": "application/hujson" }, body: text });
    expect(put.status).toBe(200);
    const get = await fetch(`${s.url}/api/v1/policy`, { headers: { authorization: `Bearer ${key}`, accept: "application/hujson" } });
    expect(get.headers.get("content-type")).toContain("application/hujson");
    expect(await get.text()).toBe(text);
    const bad = await fetch(`${s.url}/api/v1/policy/check`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/hujson" }, body: "{ \"acls\": [ }" });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/^invalid policy: 1:\d+: /);
  });

  it("serves an OpenAPI document naming every route, without a key", async () => {
    const doc = await (await fetch(`${s.url}/api/v1/openapi.json`)).json();
    expect(doc.openapi).toBe("3.1.0");
    const key = (await s.cli(["apikeys", "create"])).stdout.trim();
    for (const [path, ops] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const method of Object.keys(ops)) {
        // Every documented route exists: it answers anything but "no such route" / 405.
        const r = await fetch(`${s.url}/api/v1${path.replace(/\{\w+\}/g, "nonexistent")}`, { method: method.toUpperCase(), headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: method === "get" || method === "delete" ? undefined : "{}" });
        const body = await r.text();
        expect(r.status, `${method} ${path}`).not.toBe(405);
        expect(body, `${method} ${path}`).not.toContain("route_not_found");
      }
    }
  });

  it("serves Prometheus metrics to API keys", async () => {
    expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
    const key = (await s.cli(["apikeys", "create"])).stdout.trim();
    const r = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/plain");
    const text = await r.text();
    expect(text).toMatch(/^lattice_nodes\{state="offline"\} 1$/m);
    expect(text).toMatch(/^lattice_registrations_total\{outcome="pending_approval"\} 1$/m);
    expect(text).toMatch(/^lattice_registrations_total\{outcome="refused"\} 1$/m);
    expect(text).toMatch(/^lattice_map_streams 0$/m);
    expect(text).toMatch(/^lattice_policy_compiles_total\{result="ok"\} \d+$/m);
    expect(text).toMatch(/^lattice_policy_compile_seconds_count \d+$/m);
    expect(text).toMatch(/^lattice_http_responses_total\{code="401"\} \d+$/m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
  });

  it("/healthz answers with the database reachable; --version prints the version", async () => {
    const h = await fetch(`${s.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ ok: true, database: "ok" });
    const v = await runCli(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
