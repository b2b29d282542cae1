/**
 * One `lattice-control` per PostgreSQL database (a throwaway cluster from the harness):
 * the session advisory lock refuses a second server, is per database, dies with the
 * holder (kill -9), and a server whose lock connection is cut stops instead of running
 * unlocked.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, pgBinDir, startPostgres, startServer, waitFor, type PgCluster, type ServerProc } from "./harness.js";
import { failureLine, serveExpectingExit, tcpListening } from "./startup-process.js";

/** Runs one SQL statement with psql; returns its unaligned output. */
function psql(url: string, sql: string): string {
  return execFileSync(join(pgBinDir()!, "psql"), [url, "-XAtc", sql], { encoding: "utf8" }).trim();
}

describe("one server per PostgreSQL database", () => {
  let cluster: PgCluster;
  const servers: ServerProc[] = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    for (const s of servers) await s.stop();
    cluster?.stop();
  });

  it("a second server on the same database refuses to start, naming the lock holder; another database is fine", async () => {
    const url = await cluster.createDb("lattice_lock_a");
    const a = await startServer({ db: url });
    servers.push(a);
    const dir = mkdtempSync(join(tmpdir(), "lattice-pglock-"));
    const port = await freePort();
    const r = await serveExpectingExit(["--listen", `127.0.0.1:${port}`, "--socket", join(dir, "s.sock"), "--db", url]);
    const line = failureLine(r);
    expect(line).toMatch(new RegExp(`^error: --db ${url.replace(/[.]/g, "\\.")}: another lattice-control is running on this database: it holds the database lock \\(held by PostgreSQL backend pid \\d+`));
    expect(line).toContain("run one server per database");
    expect(await tcpListening(port)).toBe(false);
    // The lock is per database: a server on another database of the same cluster starts.
    const b = await startServer({ db: await cluster.createDb("lattice_lock_b") });
    servers.push(b);
    expect((await b.cli(["users", "list"])).code).toBe(0);
  });

  it("the lock dies with a kill -9'd server: the next server starts", async () => {
    const url = await cluster.createDb("lattice_lock_crash");
    const a = await startServer({ db: url });
    expect((await a.cli(["users", "create", "alice"])).code).toBe(0);
    await a.kill9();
    const b = await startServer({ db: url });
    servers.push(b);
    expect((await b.cli(["users", "list"])).stdout).toContain("alice");
  });

  it("a server whose lock connection is terminated stops with a non-zero exit", async () => {
    const url = await cluster.createDb("lattice_lock_cut");
    const a = await startServer({ db: url });
    const exited = new Promise<number | null>((r) => a.proc.once("exit", (code) => r(code)));
    expect(psql(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lattice-control (lock)' AND datname = current_database()")).toBe("1");
    psql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lattice-control (lock)' AND datname = current_database()");
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running"), 10_000))]);
    if (code === "still running") await a.kill9();
    expect(code).toBe(1);
    expect(a.stdout()).toMatch(/lost the database lock|database lock is gone/);
    await waitFor(async () => !(await tcpListening(a.port)));
  });
});
