/**
 * SSH check mode's long poll at the service level (in-process control plane, short
 * limits): a wait that sees no decision hands back the same wait URL (the node polls
 * again), a check expiring during a wait ends it with Reject at the expiry, and a node
 * that goes away ends its wait. The HTTP/Noise flow is in ssh-check.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { formatKey } from "@lattice/types";
import { createControl, type Control } from "../src/app.js";
import type { NodeRow } from "../src/db/schema.js";

const key = (kind: "node" | "machine") => formatKey(kind, new Uint8Array(randomBytes(32)));
const POLICY = `{
  "tagOwners": { "tag:server": ["alice@example.com"] },
  "ssh": [{ "action": "check", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["root"] }],
}`;

describe("SSH check wait (service)", () => {
  let c: Control;
  let server: NodeRow;
  let laptop: NodeRow;
  const start = async (limits: { sshCheckWaitMs: number; sshCheckTimeoutMs: number }) => {
    c = await createControl({ db: join(mkdtempSync(join(tmpdir(), "lattice-sshcheck-")), "t.db"), options: { serverUrl: "http://control.test" }, sshCheckLimits: limits });
    await c.users.create({ name: "alice", email: "alice@example.com" });
    await c.policies.set(POLICY);
    const reg = async (host: string, k: { user?: string; tags?: string[] }) =>
      c.nodes.registerWithAuthKey({ machineKey: key("machine"), nodeKey: key("node"), hostname: host }, (await c.authKeys.create({ ...k, preapproved: true })).key);
    server = await reg("server1", { tags: ["tag:server"] });
    laptop = await reg("laptop", { user: "alice" });
  };
  afterEach(async () => {
    await c?.close();
  });

  it("a poll that sees no decision answers the same wait URL (HoldAndDelegate) after sshCheckWaitMs", async () => {
    await start({ sshCheckWaitMs: 200, sshCheckTimeoutMs: 60_000 });
    const a = await c.sshChecks.action(server, laptop.id, server.id, "root");
    expect(a.holdAndDelegate).toMatch(/^http:\/\/control\.test\/machine\/ssh\/check\/[A-Za-z0-9_-]{22}\/wait$/);
    const id = /check\/(.+)\/wait$/.exec(a.holdAndDelegate!)![1]!;
    const t0 = Date.now();
    expect(await c.sshChecks.wait(server, id, new AbortController().signal)).toEqual({ holdAndDelegate: a.holdAndDelegate });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
  });

  it("a check that expires during a wait ends it with Reject", async () => {
    await start({ sshCheckWaitMs: 10_000, sshCheckTimeoutMs: 300 });
    const a = await c.sshChecks.action(server, laptop.id, server.id, "root");
    const id = /check\/(.+)\/wait$/.exec(a.holdAndDelegate!)![1]!;
    const t0 = Date.now();
    const r = await c.sshChecks.wait(server, id, new AbortController().signal);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r).toMatchObject({ reject: true });
    expect(r.message).toMatch(/not approved within/);
  });

  it("a node that goes away ends its wait (no answer is sent)", async () => {
    await start({ sshCheckWaitMs: 10_000, sshCheckTimeoutMs: 60_000 });
    const a = await c.sshChecks.action(server, laptop.id, server.id, "root");
    const id = /check\/(.+)\/wait$/.exec(a.holdAndDelegate!)![1]!;
    const ac = new AbortController();
    const w = c.sshChecks.wait(server, id, ac.signal);
    setTimeout(() => ac.abort(), 100);
    await expect(w).rejects.toMatchObject({ status: 499 });
  });

  it("a decision wakes the wait at once; approval then accepts the next connection without a check", async () => {
    await start({ sshCheckWaitMs: 10_000, sshCheckTimeoutMs: 60_000 });
    const a = await c.sshChecks.action(server, laptop.id, server.id, "root");
    const id = /check\/(.+)\/wait$/.exec(a.holdAndDelegate!)![1]!;
    const w = c.sshChecks.wait(server, id, new AbortController().signal);
    const t0 = Date.now();
    setTimeout(() => void c.sshChecks.decide(id, laptop.user_id!, true), 100);
    expect((await w).accept).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await c.sshChecks.action(server, laptop.id, server.id, "root")).accept).toBe(true);
    await expect(c.sshChecks.decide(id, laptop.user_id!, false)).rejects.toMatchObject({ code: "ssh_check_decided", status: 409 });
  });
});
