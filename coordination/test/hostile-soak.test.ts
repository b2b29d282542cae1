/**
 * Issue 6, acceptance item 2: hostile clients against a real `lattice-control` process,
 * all at once for 30 s — unknown upgrades, stalled HTTP/2 streams, registration floods
 * and oversized/ever-changing Hostinfo — while a legitimate node registers and its map
 * stream keeps working. Prints the server's open fds and RSS before, during (peak) and
 * after; asserts resource *counts* stay bounded and return to baseline (never speed).
 *
 * Runs unprivileged on loopback (several 127.0.0.x sources), so it is in the unit project.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, statSync } from "node:fs";
import type { MapResponse } from "@lattice/types";
import { startServer, TestNode, waitFor, type ServerProc } from "./harness.js";
import { registrationFlood, type RegistrationFloodResult } from "./hostile/registration-flood.js";
import { hostinfoFlood, type HostinfoFloodResult } from "./hostile/hostinfo-flood.js";
import { pendingRegistrations } from "./hostile/db-probe.js";
import { openUnknownUpgrades, procStats, slowHeaders, stalledH2Streams, type Hostile } from "./hostile/clients.js";

const SOAK_MS = 30_000;
const ALLOW_ALL = `{ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ] }`;
const FLOOD_SOURCES = Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 2}`);
const PER_SOURCE = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Background reader of a map stream: messages so far, and whether it ended. */
function follow(n: TestNode) {
  const st = n.map({ KeepAlive: true });
  const state = { messages: [] as MapResponse[], ended: false, close: () => st.close() };
  void (async () => {
    try {
      for await (const m of st) state.messages.push(m);
    } catch {
      /* ended */
    }
    state.ended = true;
  })();
  return state;
}

describe("hostile soak (issue 6 acceptance 2)", () => {
  let s: ServerProc;
  let authKey: string;
  let apiKey: string;
  const nodes: TestNode[] = [];
  const join = async (host: string) => {
    const n = await new TestNode(s.url, host).connect();
    nodes.push(n);
    const r = await n.register({ Auth: { AuthKey: authKey } });
    expect(r.MachineAuthorized).toBe(true);
    return n;
  };

  beforeAll(async () => {
    s = await startServer({ env: { LATTICE_CONTROL_MAX_PENDING_REGISTRATIONS_PER_SOURCE: String(PER_SOURCE) } });
    expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
    authKey = (await s.cli(["keys", "create", "--user", "alice", "--reusable", "--preapproved"])).stdout.trim();
    apiKey = (await s.cli(["apikeys", "create"])).stdout.trim();
    expect((await s.api("PUT", "/policy", { policy: ALLOW_ALL }, apiKey)).status).toBe(200);
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("unknown upgrades, stalled HTTP/2 streams, registration floods and Hostinfo floods for 30 s: the legitimate node registers and streams; fds, RSS and pending rows stay bounded", async () => {
    const pid = s.proc.pid!;
    const dbBytes = () => statSync(s.db).size + (existsSync(`${s.db}-wal`) ? statSync(`${s.db}-wal`).size : 0);

    // The legitimate node: registered and streaming before the attack starts.
    const legit = await join("legit");
    const legitStream = follow(legit);
    await waitFor(() => legitStream.messages.length > 0, 10_000);
    // Attacking nodes that are approved (Hostinfo floods need a registered node).
    const chatty = await join("chatty");
    const bloated = await join("bloated");
    await sleep(500);
    const before = { ...(await procStats(pid)), db: dbBytes() };
    console.log(`before: ${before.fds} fds, RSS ${(before.rssKiB / 1024).toFixed(1)} MiB, db+wal ${(before.db / 1024).toFixed(0)} KiB`);

    const stop = new AbortController();
    const peak = { ...before };
    const sampler = (async () => {
      while (!stop.signal.aborted) {
        const st = await procStats(pid).catch(() => null);
        if (st) (peak.fds = Math.max(peak.fds, st.fds)), (peak.rssKiB = Math.max(peak.rssKiB, st.rssKiB));
        await sleep(250);
      }
    })();

    // 1. Unknown upgrades: 20 new connections every second; each batch is abandoned by the client after 5 s.
    const upgradeSets: Hostile[] = [];
    const upgrades = (async () => {
      while (!stop.signal.aborted) {
        upgradeSets.push(openUnknownUpgrades(s.url, 20));
        if (upgradeSets.length > 5) upgradeSets[upgradeSets.length - 6]!.close();
        await sleep(1000);
      }
    })();
    // 1b. Slowloris: 10 connections every second dribbling header bytes.
    const slowSets: Hostile[] = [];
    const slow = (async () => {
      while (!stop.signal.aborted) {
        slowSets.push(slowHeaders(s.url, 10));
        if (slowSets.length > 5) slowSets[slowSets.length - 6]!.close();
        await sleep(1000);
      }
    })();
    // 2. Stalled HTTP/2 streams: 4 channels x 25 streams, renewed every 10 s.
    const stalledSets: Hostile[] = [];
    const stalled = (async () => {
      while (!stop.signal.aborted) {
        stalledSets.push(await stalledH2Streams(s.url, 4, 25));
        await sleep(10_000);
      }
    })();
    // 3. Registration floods from 10 sources, 12 KiB Hostinfo each, plus oversized ones.
    const floods: Promise<RegistrationFloodResult>[] = [
      registrationFlood({ serverUrl: s.url, signal: stop.signal, concurrency: 3, sources: FLOOD_SOURCES, hostinfoBytes: 12 * 1024 }),
      registrationFlood({ serverUrl: s.url, signal: stop.signal, concurrency: 1, sources: FLOOD_SOURCES, hostinfoBytes: 200 * 1024 }),
      registrationFlood({ serverUrl: s.url, signal: stop.signal, concurrency: 1, sources: ["127.0.0.12"], sameMachine: true }),
    ];
    // 4. Hostinfo floods: one node changes a 12 KiB Hostinfo on every request, another sends 240 KiB ones.
    const hostinfo: Promise<HostinfoFloodResult>[] = [
      hostinfoFlood({ client: chatty.client, nodeKey: chatty.nodeKey, discoKey: chatty.discoKey, hostname: "chatty" }, { signal: stop.signal, hostinfoBytes: 12 * 1024 }),
      hostinfoFlood({ client: bloated.client, nodeKey: bloated.nodeKey, discoKey: bloated.discoKey, hostname: "bloated" }, { signal: stop.signal, hostinfoBytes: 240 * 1024 }),
    ];

    // Meanwhile the legitimate side: new nodes register (auth key and interactive login)
    // and the first node's stream sees them, every few seconds.
    const t0 = Date.now();
    let round = 0;
    const legitLog: string[] = [];
    while (Date.now() - t0 < SOAK_MS) {
      round++;
      const t = Date.now();
      const newcomer = await join(`newcomer-${round}`);
      const nsId = (await newcomer.client.map({ Version: 100, NodeKey: newcomer.nodeKey, Stream: false, Hostinfo: { Hostname: `newcomer-${round}`, OS: "linux" } })[Symbol.asyncIterator]().next()).value!.Node!.ID;
      await waitFor(() => legitStream.messages.some((m) => (m.PeersChanged ?? []).some((p) => p.ID === nsId)), 15_000, 25);
      const interactive = await new TestNode(s.url, `interactive-${round}`).connect();
      nodes.push(interactive);
      const ir = await interactive.register();
      expect(ir.AuthURL).toMatch(/\/register\//);
      legitLog.push(`${Date.now() - t} ms`);
      expect(legitStream.ended).toBe(false);
      await sleep(3000);
    }
    const during = { ...(await procStats(pid)), db: dbBytes(), pending: pendingRegistrations(s.db) };

    stop.abort();
    const floodResults = await Promise.all(floods);
    const hostinfoResults = await Promise.all(hostinfo);
    await Promise.all([upgrades, slow, stalled, sampler]);
    for (const h of [...upgradeSets, ...slowSets, ...stalledSets]) h.close();

    const refused: Record<string, number> = {};
    for (const r of [...floodResults, ...hostinfoResults]) for (const [k, v] of Object.entries(r.refused)) refused[k] = (refused[k] ?? 0) + v;
    const registrations = floodResults.reduce((a, r) => a + r.attempts, 0);
    const pendingCreated = floodResults.reduce((a, r) => a + r.authUrls.length, 0);
    console.log(
      `during: ${during.fds} fds (peak ${peak.fds}), RSS ${(during.rssKiB / 1024).toFixed(1)} MiB (peak ${(peak.rssKiB / 1024).toFixed(1)}), ` +
        `db+wal ${(during.db / 1024).toFixed(0)} KiB, ${during.pending.rows} pending registrations (${(during.pending.bytes / 1024).toFixed(0)} KiB)`,
    );
    console.log(
      `attack: ${slowSets.length * 10} slowloris connections, ${upgradeSets.length * 20} unknown upgrades (${upgradeSets.reduce((a, h) => a + h.answered(), 0)} answered), ` +
        `${stalledSets.reduce((a, h) => a + h.outcomes.length, 0)} stalled streams, ${registrations} registrations (${pendingCreated} answered with an AuthURL), ` +
        `${hostinfoResults.reduce((a, r) => a + r.sent, 0)} Hostinfo updates; refused ${JSON.stringify(refused)}`,
    );
    console.log(`legitimate node: ${round} rounds of register + see it on the stream + interactive login: ${legitLog.join(", ")}`);

    // The legitimate node's stream survived and still delivers.
    expect(legitStream.ended).toBe(false);
    const last = await join("after-the-storm");
    const lastId = (await last.client.map({ Version: 100, NodeKey: last.nodeKey, Stream: false })[Symbol.asyncIterator]().next()).value!.Node!.ID;
    await waitFor(() => legitStream.messages.some((m) => (m.PeersChanged ?? []).some((p) => p.ID === lastId)), 15_000, 25);

    // Registrations were bounded by the caps: pending rows <= per-source cap x sources (+ the legit ones).
    expect(during.pending.rows).toBeLessThanOrEqual(PER_SOURCE * (FLOOD_SOURCES.length + 2) + round);
    expect(during.pending.bytes).toBeLessThanOrEqual(during.pending.rows * 16 * 1024);
    // (Whether the per-source cap is reached depends on how fast the flood runs; the caps
    // themselves are proven in registration-limits.test.ts. Oversized requests always fail.)
    expect(refused.body_too_large ?? 0).toBeGreaterThan(0);
    expect(refused.hostinfo_too_large ?? 0).toBeGreaterThan(0);
    // The database grew by the capped rows, not by the flood's volume.
    expect(during.db - before.db).toBeLessThan(64 * 1024 * 1024);

    // After: the attackers left (and the nodes joined during the soak leave too, only the
    // legitimate node stays connected); fds come back to the baseline, RSS growth stays modest.
    for (const n of nodes) if (n !== legit) n.close();
    const settled = await waitFor(async () => {
      const st = await procStats(pid);
      return st.fds <= before.fds + 16 ? st : null;
    }, 30_000, 500).catch(() => null);
    const after = await procStats(pid);
    console.log(`after: ${after.fds} fds, RSS ${(after.rssKiB / 1024).toFixed(1)} MiB (baseline ${before.fds} fds, ${(before.rssKiB / 1024).toFixed(1)} MiB)`);
    expect(settled, `fds did not return to the baseline (${before.fds}): ${after.fds}`).not.toBeNull();
    expect(peak.fds).toBeLessThan(before.fds + 2000);
    expect(after.rssKiB - before.rssKiB).toBeLessThan(256 * 1024);
    legitStream.close();
  }, 180_000);
});
