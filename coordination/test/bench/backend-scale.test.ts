/**
 * Scale figures for the control plane's side of netmaps (printed, never asserted):
 * N nodes in SQLite, a realistic policy (groups, tags, ssh), then
 *  - time to load + compile + build the snapshot (ControlNodeBackend.create),
 *  - time to render every node's policy view,
 *  - time from one registration to its change set being published,
 *  - heap in use.
 * N defaults to 2,000; LATTICE_BENCH_NODES=10000 for the figure.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { formatKey } from "@lattice/types";
import { createControl } from "../../src/app.js";
import { ControlNodeBackend } from "../../src/services/node-backend.js";
import { compileFor } from "../../src/services/netmap-state.js";
import { allocateIPv4, ipv6For } from "../../src/services/addresses.js";

const N = Number(process.env.LATTICE_BENCH_NODES ?? 2000);
const USERS = 100;

const POLICY = `{
  "groups": { "group:eng": [${Array.from({ length: USERS / 2 }, (_, i) => `"u${i}@"`).join(",")}], "group:ops": [${Array.from({ length: 10 }, (_, i) => `"u${USERS - 1 - i}@"`).join(",")}] },
  "tagOwners": { "tag:server": ["group:ops"], "tag:db": ["group:ops"] },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:server:22,80,443", "autogroup:self:*"] },
    { "action": "accept", "src": ["group:ops"], "dst": ["*:*"] },
    { "action": "accept", "src": ["tag:server"], "dst": ["tag:db:5432"] },
  ],
  "ssh": [
    { "action": "accept", "src": ["group:ops"], "dst": ["tag:server", "tag:db"], "users": ["root", "autogroup:nonroot"] },
    { "action": "check", "src": ["group:eng"], "dst": ["tag:server"], "users": ["autogroup:nonroot"] },
  ],
}`;

describe(`backend scale (${N} nodes)`, () => {
  it("prints snapshot, policy-view and join figures", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-scale-"));
    const c = await createControl({ db: join(dir, "s.db"), options: { serverUrl: "http://control.test" } });
    for (let i = 0; i < USERS; i++) await c.users.create({ name: `u${i}` });
    await c.policies.set(POLICY);
    const users = await c.db.kysely.selectFrom("users").select("id").orderBy("id").execute();
    const used = new Set<string>();
    const now = Date.now();
    await c.db.kysely.transaction().execute(async (tx) => {
      for (let i = 0; i < N; i += 500) {
        const rows = [];
        for (let j = i; j < Math.min(N, i + 500); j++) {
          const ipv4 = allocateIPv4(used);
          used.add(ipv4);
          const tagged = j % 10 === 0;
          rows.push({
            machine_key: formatKey("machine", new Uint8Array(randomBytes(32))),
            node_key: formatKey("node", new Uint8Array(randomBytes(32))),
            disco_key: formatKey("disco", new Uint8Array(randomBytes(32))),
            hostname: `n${j}`,
            given_name: `n${j}`,
            user_id: tagged ? null : users[j % USERS]!.id,
            tags: tagged ? JSON.stringify([j % 20 === 0 ? "tag:server" : "tag:db"]) : "[]",
            ipv4,
            ipv6: ipv6For(ipv4),
            hostinfo: JSON.stringify({ Hostname: `n${j}`, OS: "linux" }),
            endpoints: JSON.stringify([`192.0.2.${j % 250}:41641`]),
            home_derp: 900,
            approved_routes: "[]",
            approved: 1,
            key_expiry: tagged ? null : now + 180 * 86400_000,
            expiry_disabled: 0,
            ephemeral: 0,
            auth_key_id: null,
            last_seen: null,
            online: 0,
            created_at: now,
            updated_at: now,
          });
        }
        await tx.insertInto("nodes").values(rows).execute();
      }
    });
    const heap0 = process.memoryUsage().heapUsed;
    let t = performance.now();
    {
      const rows = await c.nodes.rows();
      const us = await c.db.kysely.selectFrom("users").selectAll().execute();
      const tLoad = performance.now() - t;
      t = performance.now();
      const compiled = compileFor({ users: us, rows, policy: (await c.policies.current()).policy, serverUrl: "http://control.test" });
      const tCompile = performance.now() - t;
      let entries = 0;
      compiled.nodes.forEach((v, j) => (entries += v.peers.list.filter((k) => k !== j).length));
      console.log(`[scale] ${N} nodes: load rows ${tLoad.toFixed(0)} ms; compilePolicy alone ${tCompile.toFixed(0)} ms (${entries} peer entries)`);
    }
    t = performance.now();
    const backend = await ControlNodeBackend.create(c);
    const tCreate = performance.now() - t;
    const st = backend.netmapState();
    expect(st.nodes.size).toBe(N);
    t = performance.now();
    let peers = 0;
    for (const id of st.nodes.keys()) peers += st.policyFor(id)?.peers.size ?? 0;
    const tViews = performance.now() - t;
    const { key } = await c.authKeys.create({ user: "u0", preapproved: true });
    const published = new Promise<number>((r) => backend.subscribe((ch) => ch.nodesAdded?.length && r(performance.now())));
    t = performance.now();
    await c.nodes.registerWithAuthKey({ machineKey: formatKey("machine", new Uint8Array(randomBytes(32))), nodeKey: formatKey("node", new Uint8Array(randomBytes(32))), hostname: "joiner" }, key);
    const tJoin = (await published) - t;
    const heap = process.memoryUsage().heapUsed;
    console.log(
      `[scale] ${N} nodes: snapshot (load+compile+build) ${tCreate.toFixed(0)} ms; all policy views ${tViews.toFixed(0)} ms (${peers} peer entries); ` +
        `join → change set published ${tJoin.toFixed(0)} ms; heap +${((heap - heap0) / 2 ** 20).toFixed(0)} MiB (total ${(heap / 2 ** 20).toFixed(0)} MiB)`,
    );
    backend.close();
    await c.close();
  }, 300_000);
});
