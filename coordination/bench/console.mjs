#!/usr/bin/env node
/**
 * Admin console benchmark (issue 11, acceptance 5): the Machines page of a tailnet with
 * 10,000 nodes, first page and a filtered/later page, served by the real HTTP handler
 * (createMainServer) over loopback from a SQLite database.
 *
 *   npx tsc -b && node coordination/bench/console.mjs [--nodes 10000] [--runs 30]
 *
 * Prints the median and p95 of the request time (loopback round trip: an upper bound of
 * the server time) and the goal (first page under 300 ms). Figures, not assertions.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createControl } from "../dist/app.js";
import { createMainServer } from "../dist/http/server.js";

const { values } = parseArgs({ options: { nodes: { type: "string", default: "10000" }, runs: { type: "string", default: "30" } } });
const N = Number(values.nodes);
const RUNS = Number(values.runs);
const dir = mkdtempSync(join(tmpdir(), "lattice-bench-console-"));
const c = await createControl({ db: join(dir, "bench.db"), options: { serverUrl: "http://127.0.0.1" } });
try {
  const alice = await c.users.create({ name: "alice", password: "bench-password" });
  const t0 = performance.now();
  const now = Date.now();
  const hex = (i, w) => i.toString(16).padStart(w, "0");
  for (let start = 0; start < N; start += 500) {
    const rows = [];
    for (let i = start; i < Math.min(N, start + 500); i++) {
      rows.push({
        machine_key: `mkey:${hex(i, 64)}`,
        node_key: `nodekey:${hex(i, 64)}`,
        disco_key: `discokey:${hex(i, 64)}`,
        hostname: `host-${i}`,
        given_name: `node-${String(i).padStart(5, "0")}`,
        user_id: i % 3 === 0 ? null : alice.id,
        tags: i % 3 === 0 ? JSON.stringify(["tag:server"]) : "[]",
        ipv4: `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
        ipv6: `fd7a:115c:a1e0::${hex(i, 4)}`,
        hostinfo: JSON.stringify({ Hostname: `host-${i}`, OS: "linux", OSVersion: "Debian 12", IPNVersion: "1.80.0", RoutableIPs: i % 50 === 0 ? ["10.0.0.0/24"] : [] }),
        endpoints: JSON.stringify(["192.0.2.1:41641"]),
        home_derp: 1,
        approved_routes: "[]",
        approved: i % 100 === 0 ? 0 : 1,
        key_expiry: now + (i % 200) * 86_400_000,
        expiry_disabled: 0,
        ephemeral: 0,
        auth_key_id: null,
        last_seen: now - i * 1000,
        online: i % 2,
        created_at: now,
        updated_at: now,
      });
    }
    await c.db.kysely.insertInto("nodes").values(rows).execute();
  }
  console.log(`inserted ${N} nodes in ${(performance.now() - t0).toFixed(0)} ms`);
  const cookie = `lattice_session=${await c.sessions.create(alice.id)}`;
  const server = createMainServer(c, { log: { error: (o) => console.error(o) } });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${server.address().port}`;
  const time = async (path) => {
    const out = [];
    for (let i = 0; i < RUNS + 3; i++) {
      const s = performance.now();
      const r = await fetch(`${base}${path}`, { headers: { cookie } });
      const body = await r.text();
      if (r.status !== 200 || !body.includes("Machines")) throw new Error(`${path}: HTTP ${r.status}`);
      if (i >= 3) out.push(performance.now() - s);
    }
    out.sort((a, b) => a - b);
    return { median: out[Math.floor(out.length / 2)], p95: out[Math.floor(out.length * 0.95)] };
  };
  const rows = [];
  for (const [label, path] of [
    ["first page", "/admin/machines"],
    ["page 100", "/admin/machines?page=100"],
    ["search + filter", "/admin/machines?q=node-09&status=online"],
    ["expiring soon", "/admin/machines?status=expiring"],
  ]) {
    const t = await time(path);
    rows.push([label, t.median.toFixed(1), t.p95.toFixed(1)]);
  }
  console.log(`\nMachines page, ${N} nodes, ${RUNS} runs each (loopback request time, ms; goal: first page < 300 ms)`);
  console.log(["page".padEnd(18), "median".padStart(8), "p95".padStart(8)].join(" "));
  for (const r of rows) console.log([r[0].padEnd(18), r[1].padStart(8), r[2].padStart(8)].join(" "));
  const first = Number(rows[0][1]);
  console.log(`\nfirst page median ${first.toFixed(1)} ms: ${first < 300 ? "within" : "OVER"} the 300 ms goal`);
  server.close();
} finally {
  await c.close();
  rmSync(dir, { recursive: true, force: true });
}
