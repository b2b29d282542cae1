/**
 * Crash safety: kill -9 the server during a burst of admin writes (auth keys, policy
 * versions) and node registrations; after a restart on the same database every
 * acknowledged change is present and registered nodes reconnect.
 */
import { afterAll, describe, expect, it } from "vitest";
import { startPostgres, startServer, TestNode, type PgCluster } from "./harness.js";

async function burstAndCrash(db: string | undefined): Promise<void> {
  const s = await startServer({ db });
  expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
  const apiKey = (await s.cli(["apikeys", "create"])).stdout.trim();
  const regKey = (await s.cli(["keys", "create", "--user", "alice", "--reusable", "--preapproved"])).stdout.trim();

  const ackedKeys: string[] = [];
  const ackedPolicies: { version: number; marker: string }[] = [];
  const ackedNodes: TestNode[] = [];
  let stop = false;
  let n = 0;
  const keyWorker = async () => {
    while (!stop) {
      try {
        const r = await s.api("POST", "/keys", { user: "alice", reusable: true }, apiKey);
        if (r.status === 201) ackedKeys.push(r.json.authKey.prefix);
      } catch {
        return; // connection died with the server
      }
    }
  };
  const policyWorker = async () => {
    while (!stop) {
      const marker = `m${n++}`;
      try {
        const r = await s.api("PUT", "/policy", { policy: `// ${marker}\n{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}` }, apiKey);
        if (r.status === 200) ackedPolicies.push({ version: r.json.version, marker });
      } catch {
        return;
      }
    }
  };
  const nodeWorker = async () => {
    while (!stop) {
      const t = new TestNode(s.url, `crash-${n++}`);
      try {
        await t.connect();
        const r = await t.register({ Auth: { AuthKey: regKey } });
        if (r.MachineAuthorized) ackedNodes.push(t);
      } catch {
        return;
      } finally {
        t.close();
      }
    }
  };
  const workers = [keyWorker(), keyWorker(), policyWorker(), policyWorker(), nodeWorker(), nodeWorker()];
  await new Promise((r) => setTimeout(r, 1500));
  await s.kill9();
  stop = true;
  await Promise.all(workers);
  console.log(`acknowledged before kill -9: ${ackedKeys.length} keys, ${ackedPolicies.length} policy versions, ${ackedNodes.length} registrations`);
  expect(ackedKeys.length).toBeGreaterThan(0);
  expect(ackedPolicies.length).toBeGreaterThan(0);
  expect(ackedNodes.length).toBeGreaterThan(0);

  const s2 = await startServer({ db: s.db, dir: s.dir, port: s.port });
  try {
    const keys = JSON.parse((await s2.cli(["keys", "list", "--json"])).stdout) as { prefix: string }[];
    const have = new Set(keys.map((k) => k.prefix));
    for (const p of ackedKeys) expect(have.has(p), `acknowledged key ${p} lost`).toBe(true);
    const cur = (await s2.api("GET", "/policy", undefined, apiKey)).json;
    const last = ackedPolicies.reduce((a, b) => (b.version > a.version ? b : a));
    expect(cur.version).toBeGreaterThanOrEqual(last.version);
    if (cur.version === last.version) expect(cur.policy).toContain(last.marker);
    const nodes = JSON.parse((await s2.cli(["nodes", "list", "--json"])).stdout) as { nodeKey: string; online: boolean }[];
    const byKey = new Set(nodes.map((x) => x.nodeKey));
    for (const t of ackedNodes) expect(byKey.has(t.nodeKey), `acknowledged node ${t.hostname} lost`).toBe(true);
    expect(nodes.every((x) => !x.online)).toBe(true);
    // A node registered before the crash reconnects with its keys and gets its netmap.
    const back = ackedNodes[0]!;
    await back.connect();
    const m = back.map()[Symbol.asyncIterator]();
    const full = (await m.next()).value;
    expect(full.Node.Key).toBe(back.nodeKey);
    await m.return!();
    back.close();
  } finally {
    await s2.stop();
  }
}

describe("crash safety (kill -9 during a write burst)", () => {
  let cluster: PgCluster | undefined;
  afterAll(() => cluster?.stop());

  it("SQLite: every acknowledged change survives", async () => {
    await burstAndCrash(undefined);
  }, 90_000);

  it("PostgreSQL: every acknowledged change survives", async () => {
    cluster = await startPostgres();
    await burstAndCrash(await cluster.createDb("lattice_crash"));
  }, 90_000);
});
