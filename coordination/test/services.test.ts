/**
 * Service-level tests with an injected clock: node key expiry (180 days, announced when
 * it passes), tagged nodes without expiry, ephemeral cleanup, auth key lifetimes, and the
 * NodeBackend's ordering contract (change sets carry the version of a snapshot that
 * already shows them).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createControl, type Control } from "../src/app.js";
import { ControlNodeBackend } from "../src/services/node-backend.js";
import type { Change, VersionedChange } from "../src/mapper/types.js";
import { formatKey } from "@lattice/types";

const DAY = 86_400_000;
const key = (kind: "node" | "machine" | "disco") => formatKey(kind, new Uint8Array(randomBytes(32)));

describe("services with a fake clock", () => {
  let now = Date.parse("2026-01-01T00:00:00Z");
  let c: Control;
  const bus: Change[] = [];
  const reg = (k: string, host: string) =>
    c.nodes.registerWithAuthKey({ machineKey: key("machine"), nodeKey: key("node"), hostname: host }, k);

  let dbPath = "";
  beforeEach(async () => {
    now = Date.parse("2026-01-01T00:00:00Z");
    dbPath = join(mkdtempSync(join(tmpdir(), "lattice-svc-")), "t.db");
    c = await createControl({
      db: dbPath,
      options: { serverUrl: "http://control.test", ephemeralTimeoutMs: 60_000 },
      now: () => now,
    });
    bus.length = 0;
    c.bus.subscribe((ch) => bus.push(ch));
    await c.users.create({ name: "alice" });
  });
  afterEach(async () => {
    await c.close();
  });

  it("user nodes expire after 180 days; the sweep announces it once", async () => {
    const { key: k } = await c.authKeys.create({ user: "alice", preapproved: true });
    const n = await reg(k, "laptop");
    expect(n.key_expiry).toBe(now + 180 * DAY);
    now += 180 * DAY - 1000;
    expect((await c.nodes.sweep()).expired).toEqual([]);
    now += 2000;
    expect((await c.nodes.sweep()).expired).toEqual([n.id]);
    expect(bus.filter((b) => b.disconnect).map((b) => b.disconnect)).toEqual([[n.id]]);
    expect((await c.nodes.sweep()).expired).toEqual([]);
    expect(() => c.nodes.assertUsable(n)).toThrow(/expired/);
    // disable-expiry makes it usable again without re-auth
    await c.nodes.disableExpiry(String(n.id));
    const again = (await c.nodes.rows([n.id]))[0]!;
    expect(() => c.nodes.assertUsable(again)).not.toThrow();
  });

  it("tagged nodes do not expire by default", async () => {
    await c.policies.set(`{"tagOwners": {"tag:ci": []}}`);
    const { key: k } = await c.authKeys.create({ tags: ["tag:ci"], preapproved: true });
    const n = await reg(k, "runner");
    expect(n.key_expiry).toBeNull();
    expect(n.user_id).toBeNull();
  });

  it("auth keys: lifetime bounds and expiry by the clock", async () => {
    await expect(c.authKeys.create({ user: "alice", expiryMs: DAY - 1 })).rejects.toThrow(/between 1 day/);
    await expect(c.authKeys.create({ user: "alice", expiryMs: 90 * DAY + 1 })).rejects.toThrow(/between 1 day/);
    await expect(c.authKeys.create({})).rejects.toThrow(/needs a user or tags/);
    const { key: k } = await c.authKeys.create({ user: "alice", expiryMs: DAY, reusable: true });
    now += DAY - 1;
    await reg(k, "a");
    now += 1;
    await expect(reg(k, "b")).rejects.toMatchObject({ code: "auth_key_expired" });
  });

  it("ephemeral nodes are deleted only after staying offline past the timeout", async () => {
    const { key: k } = await c.authKeys.create({ user: "alice", ephemeral: true, preapproved: true });
    const n = await reg(k, "ci");
    await c.nodes.setOnline(n.id, true);
    now += 10 * 60_000;
    expect((await c.nodes.sweep()).deleted).toEqual([]);
    await c.nodes.setOnline(n.id, false);
    now += 59_000;
    expect((await c.nodes.sweep()).deleted).toEqual([]);
    now += 2000;
    expect((await c.nodes.sweep()).deleted).toEqual([n.id]);
    expect(await c.nodes.rows([n.id])).toEqual([]);
  });

  it("after a restart, ephemeral nodes that were online get a fresh offline timeout", async () => {
    const { key: k } = await c.authKeys.create({ user: "alice", ephemeral: true, preapproved: true });
    const n = await reg(k, "ci-online");
    await c.nodes.setOnline(n.id, true);
    await c.close();
    now += 3600_000; // the server was down for an hour
    c = await createControl({ db: dbPath, options: { serverUrl: "http://control.test", ephemeralTimeoutMs: 60_000 }, now: () => now });
    expect((await c.nodes.sweep()).deleted).toEqual([]);
    now += 61_000;
    expect((await c.nodes.sweep()).deleted).toEqual([n.id]);
  });

  it("addresses and names stay unique under concurrent registrations", async () => {
    const { key: k } = await c.authKeys.create({ user: "alice", reusable: true, preapproved: true });
    const rows = await Promise.all(Array.from({ length: 20 }, () => reg(k, "box")));
    expect(new Set(rows.map((r) => r.ipv4)).size).toBe(20);
    expect(new Set(rows.map((r) => r.given_name)).size).toBe(20);
  });

  it("NodeBackend: each change set's version names a snapshot that already shows the change", async () => {
    const backend = await ControlNodeBackend.create(c);
    const seen: { change: VersionedChange; ok: boolean }[] = [];
    backend.subscribe((change) => {
      const st = backend.netmapState();
      const ok = st.version >= change.version && (change.nodesAdded ?? []).every((id) => st.nodes.has(id)) && (change.nodesRemoved ?? []).every((id) => !st.nodes.has(id));
      seen.push({ change, ok });
    });
    const { key: k } = await c.authKeys.create({ user: "alice", reusable: true, preapproved: true });
    const a = await reg(k, "a");
    const b = await reg(k, "b");
    await backend.settled();
    const st = backend.netmapState();
    expect(st.nodes.get(a.id)?.Name).toBe("a.lattice.internal.");
    expect(st.policyFor(a.id)?.peers.has(b.id)).toBe(true);
    expect(st.policyFor(a.id)?.packetFilter.length).toBeGreaterThan(0);
    await c.policies.set(`{"acls": []}`);
    await backend.settled();
    expect(backend.netmapState().policyFor(a.id)?.peers.size).toBe(0);
    await c.nodes.delete(String(b.id));
    await backend.settled();
    // Changes may be batched, but none is lost and versions only grow.
    expect(seen.every((s) => s.ok)).toBe(true);
    const versions = seen.map((s) => s.change.version);
    expect(versions).toEqual([...versions].sort((x, y) => x - y));
    expect(new Set(versions).size).toBe(versions.length);
    expect(seen.flatMap((s) => s.change.nodesAdded ?? []).sort()).toEqual([a.id, b.id].sort());
    const last = seen.at(-1)!.change;
    expect(last.nodesRemoved).toEqual([b.id]);
    expect(last.disconnect).toEqual([b.id]);
    // Policy changes are announced tailnet-wide or for the nodes whose compiled view changed.
    expect(seen.filter((s) => s.change.policyChanged || s.change.policyChangedFor?.includes(a.id)).length).toBeGreaterThanOrEqual(2);
    backend.close();
  });

  it("NodeBackend: a burst of registrations is applied in few batches and all reach the snapshot", async () => {
    const backend = await ControlNodeBackend.create(c);
    const changes: VersionedChange[] = [];
    backend.subscribe((ch) => changes.push(ch));
    const { key: k } = await c.authKeys.create({ user: "alice", reusable: true, preapproved: true });
    const rows = await Promise.all(Array.from({ length: 30 }, (_, i) => reg(k, `burst-${i}`)));
    await backend.settled();
    const st = backend.netmapState();
    for (const r of rows) expect(st.nodes.has(r.id)).toBe(true);
    expect(new Set(changes.flatMap((ch) => ch.nodesAdded ?? []))).toEqual(new Set(rows.map((r) => r.id)));
    expect(changes.length).toBeLessThanOrEqual(30);
    backend.close();
  });

  it("NodeBackend: incremental compiles publish the same policy views and policyChangedFor as full recompiles", async () => {
    await c.users.create({ name: "bob" });
    await c.policies.set(`{
      "groups": {"group:eng": ["alice@"]},
      "tagOwners": {"tag:web": ["alice@"], "tag:db": ["alice@"]},
      "acls": [
        {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
        {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},
        {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
      ],
      "ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db"], "users": ["root"]}],
    }`);
    const inc = await ControlNodeBackend.create(c);
    const full = await ControlNodeBackend.create(c, { incrementalCompile: false });
    const last: Record<string, VersionedChange | undefined> = {};
    inc.subscribe((ch) => (last.inc = ch));
    full.subscribe((ch) => (last.full = ch));
    const same = async (): Promise<void> => {
      await inc.settled();
      await full.settled();
      expect([...(last.inc?.policyChangedFor ?? [])].sort()).toEqual([...(last.full?.policyChangedFor ?? [])].sort());
      expect(last.inc?.policyChanged).toBe(last.full?.policyChanged);
      const a = inc.netmapState();
      const b = full.netmapState();
      expect([...a.nodes.keys()].sort()).toEqual([...b.nodes.keys()].sort());
      for (const id of a.nodes.keys()) {
        const pa = a.policyFor(id)!;
        const pb = b.policyFor(id)!;
        expect([...pa.peers.entries()]).toEqual([...pb.peers.entries()]);
        expect(pa.packetFilter).toEqual(pb.packetFilter);
        expect(pa.ssh).toEqual(pb.ssh);
      }
    };
    const alice = (await c.authKeys.create({ user: "alice", reusable: true, preapproved: true })).key;
    const bob = (await c.authKeys.create({ user: "bob", reusable: true, preapproved: true })).key;
    const web = (await c.authKeys.create({ user: "alice", reusable: true, preapproved: true, tags: ["tag:web"] })).key;
    const db = (await c.authKeys.create({ user: "alice", reusable: true, preapproved: true, tags: ["tag:db"] })).key;
    const nodes = [];
    for (const [k, host] of [[web, "web1"], [db, "db1"], [alice, "a1"], [bob, "b1"], [web, "web2"], [alice, "a2"], [db, "db2"]] as const) {
      nodes.push(await reg(k, host));
      await same();
    }
    // The last join (a database) changes what the web servers and alice's devices see.
    expect(last.inc?.policyChangedFor?.length).toBeGreaterThan(1);
    await c.nodes.setTags(String(nodes[2].id), ["tag:web"]);
    await same();
    await c.nodes.delete(String(nodes[3].id));
    await same();
    nodes.push(await reg(bob, "b2"));
    await same();
    inc.close();
    full.close();
  });
});
