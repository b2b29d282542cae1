/**
 * The console's queries and the audit log on PostgreSQL (a throwaway cluster from the
 * harness): every page with search and filters renders, changes are audited and paged.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, startServer, TestNode, webLogin, type PgCluster, type ServerProc } from "./harness.js";

describe("console and audit log on PostgreSQL (issue 11)", () => {
  let cluster: PgCluster;
  let s: ServerProc;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    cluster = await startPostgres();
    s = await startServer({ db: await cluster.createDb("lattice_console") });
    expect((await s.cli(["users", "create", "alice", "--password-stdin"], "alice-password\n")).code).toBe(0);
  }, 90_000);
  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
    cluster?.stop();
  });

  it("renders every page, searches and filters machines, and audits changes", async () => {
    const key = (await s.cli(["keys", "create", "--user", "alice", "--reusable"])).stdout.trim();
    for (const host of ["pg-web", "pg_db%"]) {
      const n = await new TestNode(s.url, host).connect();
      nodes.push(n);
      await n.register({ Auth: { AuthKey: key } } as never);
    }
    expect((await s.cli(["nodes", "approve", "pg-web"])).code).toBe(0);
    const cookie = await webLogin(s.url, "alice", "alice-password", "/admin/machines");
    const get = async (path: string) => {
      const r = await fetch(`${s.url}${path}`, { headers: { cookie } });
      expect(r.status, path).toBe(200);
      return r.text();
    };
    for (const path of ["/admin/users", "/admin/acls?src=alice%40&dst=pg-web%3A22", "/admin/dns", "/admin/logs", "/admin/settings"]) await get(path);
    expect(await get("/admin/machines?q=pg-w")).toContain("pg-web.lattice.internal");
    // LIKE wildcards in the search are literal.
    expect(await get("/admin/machines?q=%25")).toContain("1 machine,");
    expect(await get("/admin/machines?status=pending")).toContain("1 machine,");
    expect(await get("/admin/machines?user=alice&status=expiring")).toContain("0 machines,");
    expect(await get("/admin/machines?tag=tag%3Anone")).toContain("0 machines,");
    const audit = (await s.cli(["audit", "--json"])).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(audit.map((e) => e.action)).toEqual(["user.create", "authkey.create", "node.approve"]);
    const page = await (await fetch(`${s.url}/admin/logs`, { headers: { cookie } })).text();
    expect(page).toContain("node.approve");
  });
});
