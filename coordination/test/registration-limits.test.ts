/**
 * Issue 6 A6 (unauthenticated database flood): interactive registrations through the real
 * Noise control channel against the real server process are capped per machine key, per
 * source address and in total, limited in size, and expire soon when no node waits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, statSync } from "node:fs";
import { ControlError } from "@lattice/control-client";
import { startServer, TestNode, waitFor, type ServerProc } from "./harness.js";
import { formatKey } from "@lattice/types";
import { registrationFlood } from "./hostile/registration-flood.js";
import { expiresAt, pendingRegistrations } from "./hostile/db-probe.js";

const idOf = (authUrl: string) => authUrl.split("/register/")[1]!;

describe("interactive registration limits (issue 6 A6)", () => {
  let s: ServerProc;
  const nodes: TestNode[] = [];

  beforeAll(async () => {
    s = await startServer({
      env: { LATTICE_CONTROL_MAX_PENDING_REGISTRATIONS_PER_SOURCE: "5", LATTICE_CONTROL_MAX_PENDING_REGISTRATIONS: "12" },
    });
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("one machine key holds one pending registration: a new node key supersedes the earlier one", async () => {
    const n = await new TestNode(s.url, "twice").connect();
    nodes.push(n);
    const first = await n.register();
    expect(first.AuthURL).toMatch(/\/register\//);
    // The node waits on its first login (follow-up request) ...
    const waiting = n.register({ Followup: first.AuthURL }).then(
      () => null,
      (e: unknown) => e,
    );
    await waitFor(() => (expiresAt(s.db, idOf(first.AuthURL))! > Date.now() + 5 * 60_000 ? true : false), 5000);
    // ... then asks again with a new node key: the earlier registration is replaced.
    n.nodeKey = formatKey("node", new Uint8Array(32).fill(0xab));
    const second = await n.register();
    expect(second.AuthURL).not.toBe(first.AuthURL);
    const err = await waiting;
    expect(err).toBeInstanceOf(ControlError);
    expect((err as ControlError).code).toBe("registration_superseded");
    expect((err as ControlError).status).toBe(401);
    expect(pendingRegistrations(s.db, { machineKey: formatKey("machine", n.machine.publicKey) }).rows).toBe(1);

    // A flood from one machine key with ever new node keys keeps one row.
    const before = pendingRegistrations(s.db).rows;
    const r = await registrationFlood({ serverUrl: s.url, attempts: 20, concurrency: 1, sameMachine: true, sources: ["127.0.0.7"] });
    expect(r.authUrls).toHaveLength(20);
    expect(pendingRegistrations(s.db, { source: "127.0.0.7" }).rows).toBe(1);
    expect(pendingRegistrations(s.db).rows).toBe(before + 1);
  });

  it("register bodies are limited before authentication (413 body_too_large); what is kept per registration stays small", async () => {
    const big = await registrationFlood({ serverUrl: s.url, attempts: 3, concurrency: 1, hostinfoBytes: 100 * 1024, sources: ["127.0.0.8"] });
    expect(big.authUrls).toHaveLength(0);
    expect(big.refused).toEqual({ body_too_large: 3 });
    const fat = await registrationFlood({ serverUrl: s.url, attempts: 2, concurrency: 1, hostinfoBytes: 20 * 1024, sources: ["127.0.0.8"] });
    expect(fat.refused).toEqual({ hostinfo_too_large: 2 });
    const ok = await registrationFlood({ serverUrl: s.url, attempts: 1, concurrency: 1, hostinfoBytes: 12 * 1024, sources: ["127.0.0.8"] });
    expect(ok.authUrls).toHaveLength(1);
    const kept = pendingRegistrations(s.db, { source: "127.0.0.8" });
    expect(kept.rows).toBe(1);
    expect(kept.bytes).toBeLessThan(16 * 1024);
  });

  it("pending registrations per source address stop at maxPendingRegistrationsPerSource (429 registration_limit_source)", async () => {
    const before = pendingRegistrations(s.db, { source: "127.0.0.1" }).rows; // the first test's node
    const r = await registrationFlood({ serverUrl: s.url, attempts: 15, concurrency: 3, sources: ["127.0.0.1"] });
    console.log(`one source, 15 attempts: ${r.authUrls.length} pending, refused ${JSON.stringify(r.refused)}`);
    expect(r.authUrls).toHaveLength(5 - before);
    expect(r.refused).toEqual({ registration_limit_source: 10 + before });
    expect(pendingRegistrations(s.db, { source: "127.0.0.1" }).rows).toBe(5);
    // The refusal names the limit and the setting.
    const n = await new TestNode(s.url, "one-too-many").connect();
    nodes.push(n);
    await expect(n.register()).rejects.toMatchObject({ status: 429, code: "registration_limit_source", message: expect.stringMatching(/limit 5, setting maxPendingRegistrationsPerSource/) });
  });

  it("pending registrations in total stop at maxPendingRegistrations (429 registration_limit_total) whatever the sources", async () => {
    const dbSize = () => statSync(s.db).size + (existsSync(`${s.db}-wal`) ? statSync(`${s.db}-wal`).size : 0);
    const dbBefore = dbSize();
    const before = pendingRegistrations(s.db).rows;
    const sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"];
    const r = await registrationFlood({ serverUrl: s.url, attempts: 40, concurrency: 4, sources, hostinfoBytes: 12 * 1024 });
    console.log(`5 sources, 40 attempts: ${r.authUrls.length} pending, refused ${JSON.stringify(r.refused)}; db+wal ${dbBefore} -> ${dbSize()} bytes`);
    expect(pendingRegistrations(s.db).rows).toBe(12);
    expect(r.authUrls).toHaveLength(12 - before);
    expect(r.refused.registration_limit_total ?? 0).toBeGreaterThan(0);
    expect((r.refused.registration_limit_total ?? 0) + (r.refused.registration_limit_source ?? 0)).toBe(40 - (12 - before));
    expect(r.transportErrors).toBe(0);
  });
});

describe("interactive registrations nobody waits on expire soon (issue 6 A6)", () => {
  let s: ServerProc;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    s = await startServer({ env: { LATTICE_CONTROL_REGISTRATION_IDLE_TIMEOUT: "1s", LATTICE_CONTROL_SWEEP_INTERVAL: "500ms" } });
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("a registration lives registrationTimeout while its node waits and registrationIdleTimeout once nobody does", async () => {
    // Abandoned right away: gone after about a second.
    const quitter = await new TestNode(s.url, "quitter").connect();
    nodes.push(quitter);
    const abandoned = (await quitter.register()).AuthURL;
    quitter.close();
    await waitFor(() => expiresAt(s.db, idOf(abandoned)) === undefined, 10_000);
    const late = await new TestNode(s.url, "late").connect();
    nodes.push(late);
    await expect(late.register({ Followup: abandoned })).rejects.toMatchObject({ code: "registration_not_found" });

    // Waited on: kept for the full registration timeout while the follow-up is open ...
    const n = await new TestNode(s.url, "waiter").connect();
    nodes.push(n);
    const url = (await n.register()).AuthURL;
    void n.register({ Followup: url }).catch(() => {});
    await waitFor(() => (expiresAt(s.db, idOf(url)) ?? 0) > Date.now() + 10 * 60_000, 5000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(expiresAt(s.db, idOf(url))).toBeGreaterThan(Date.now() + 10 * 60_000);
    // ... and expires a second after the node went away.
    n.close();
    await waitFor(() => expiresAt(s.db, idOf(url)) === undefined, 10_000);
  });
});
