/**
 * `lattice-control serve` startup, as real processes: every resource it cannot open ends
 * it with one line naming the setting and the path and a non-zero exit (never a hang,
 * never a half-started server); the SQLite files are private; one server per database.
 * (PostgreSQL: startup.postgres.test.ts.)
 */
import { afterAll, describe, expect, it } from "vitest";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startServer, type ServerProc } from "./harness.js";
import { failureLine, serveExpectingExit, tcpListening } from "./startup-process.js";

const root = mkdtempSync(join(tmpdir(), "lattice-startup-"));
let n = 0;
/** A fresh directory per test. */
const fresh = () => {
  const d = join(root, String(++n));
  mkdirSync(d);
  return d;
};
const mode = (p: string) => statSync(p).mode & 0o777;

describe("serve: a resource that cannot be opened ends startup with one line naming the setting", () => {
  const servers: ServerProc[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });
  const base = (d: string) => ["--listen", "127.0.0.1:0", "--socket", join(d, "s.sock"), "--db", join(d, "x.db")];

  it("--db under /proc fails at once instead of spinning on mkdir", async () => {
    const d = fresh();
    const r = await serveExpectingExit([...base(d), "--db", "/proc/nope/a.db"]);
    expect(failureLine(r)).toBe("error: --db /proc/nope/a.db: cannot create directory /proc/nope: no such file or directory (ENOENT)");
  });

  it("--db under a regular file names the file that is not a directory", async () => {
    const d = fresh();
    writeFileSync(join(d, "plain"), "");
    const r = await serveExpectingExit([...base(d), "--db", join(d, "plain", "a.db")]);
    expect(failureLine(r)).toBe(`error: --db ${join(d, "plain", "a.db")}: ${join(d, "plain")} is not a directory`);
  });

  it("--db in a read-only directory names the database path", async () => {
    const d = fresh();
    const ro = join(d, "ro");
    mkdirSync(ro);
    const db = join(ro, "a.db");
    // Root ignores directory modes: a read-only tmpfs in a private mount namespace instead.
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) {
      writeFileSync(db, "", { mode: 0o600 });
      chmodSync(ro, 0o555);
    }
    const wrap = asRoot
      ? ["unshare", "-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs none ${ro} && : > ${db} && chmod 600 ${db} && mount -o remount,ro ${ro} && exec "$@"`, "sh"]
      : [];
    const r = await serveExpectingExit([...base(d), "--db", db], { wrap });
    const line = failureLine(r);
    expect(line).toMatch(new RegExp(`^error: --db ${db}: `));
    expect(line).toMatch(/read-only file system|permission denied/);
  });

  it("--socket under /proc fails at once instead of spinning on mkdir", async () => {
    const d = fresh();
    const r = await serveExpectingExit([...base(d), "--socket", "/proc/nope/g.sock"]);
    expect(failureLine(r)).toBe("error: --socket /proc/nope/g.sock: cannot create directory /proc/nope: no such file or directory (ENOENT)");
  });

  it("--socket under a regular file stops the whole server: no HTTP left serving", async () => {
    const d = fresh();
    writeFileSync(join(d, "plain"), "");
    const port = await freePort();
    const r = await serveExpectingExit([...base(d), "--listen", `127.0.0.1:${port}`, "--socket", join(d, "plain", "g.sock")]);
    expect(failureLine(r)).toBe(`error: --socket ${join(d, "plain", "g.sock")}: ${join(d, "plain")} is not a directory`);
    expect(await tcpListening(port)).toBe(false);
  });

  it("--socket a live server answers on: the second server exits instead of serving HTTP half-started", async () => {
    const s = await startServer();
    servers.push(s);
    const d = fresh();
    const port = await freePort();
    const r = await serveExpectingExit([...base(d), "--listen", `127.0.0.1:${port}`, "--socket", s.socket]);
    expect(failureLine(r)).toBe(`error: --socket ${s.socket}: another server is listening on this admin socket (stop it first, or choose another --socket)`);
    expect(await tcpListening(port)).toBe(false);
    // The first server still owns its socket.
    expect((await s.cli(["users", "list"])).code).toBe(0);
  });

  it("--socket in a directory the server's user cannot write names --socket and the path", async () => {
    // Root ignores directory modes: run the server as nobody then (dist must be readable by it).
    const asRoot = process.getuid?.() === 0;
    const d = mkdtempSync(join(tmpdir(), "lattice-startup-user-"));
    chmodSync(d, 0o755);
    mkdirSync(join(d, "data"), { mode: 0o777 });
    chmodSync(join(d, "data"), 0o777);
    mkdirSync(join(d, "run"), { mode: 0o555 });
    chmodSync(join(d, "run"), 0o555);
    const sock = join(d, "run", "control.sock");
    const wrap = asRoot ? ["runuser", "-u", "nobody", "--"] : [];
    const r = await serveExpectingExit(["--listen", "127.0.0.1:0", "--db", join(d, "data", "x.db"), "--socket", sock], { wrap });
    expect(failureLine(r)).toBe(`error: --socket ${sock}: cannot listen: permission denied ${sock} (EACCES)`);
  });

  it("--socket naming a regular file is refused and the file is not deleted", async () => {
    const d = fresh();
    const f = join(d, "notes.txt");
    writeFileSync(f, "keep me");
    const r = await serveExpectingExit([...base(d), "--socket", f]);
    expect(failureLine(r)).toBe(`error: --socket ${f}: exists and is not a socket; remove it or choose another --socket`);
    expect(readFileSync(f, "utf8")).toBe("keep me");
  });

  it("the socket and database lock of a kill -9'd server are taken over by the next one", async () => {
    const a = await startServer();
    expect((await a.cli(["users", "create", "alice"])).code).toBe(0);
    await a.kill9();
    expect(existsSync(a.socket)).toBe(true); // left behind by the crash
    const b = await startServer({ dir: a.dir, db: a.db });
    servers.push(b);
    expect((await b.cli(["users", "list"])).stdout).toContain("alice");
  });

  it("--listen on a port in use names --listen and the address", async () => {
    const s = servers[0]!;
    const d = fresh();
    const r = await serveExpectingExit([...base(d), "--listen", `127.0.0.1:${s.port}`]);
    expect(failureLine(r)).toBe(`error: --listen 127.0.0.1:${s.port}: cannot listen: address already in use 127.0.0.1:${s.port} (EADDRINUSE)`);
    expect(existsSync(join(d, "s.sock"))).toBe(false); // the admin socket opened before was closed again
  });

  it("--tls-cert that cannot be read, or a key not matching it, names the file", async () => {
    const d = fresh();
    const r = await serveExpectingExit([...base(d), "--tls-cert", join(d, "nope.pem"), "--tls-key", join(d, "nope.key")]);
    expect(failureLine(r)).toBe(`error: --tls-cert ${join(d, "nope.pem")}: cannot read: no such file or directory (ENOENT)`);
    const gen = (name: string) =>
      execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-keyout", join(d, `${name}.key`), "-out", join(d, `${name}.pem`), "-subj", "/CN=t"], { stdio: "ignore" });
    gen("a");
    gen("b");
    const m = await serveExpectingExit([...base(d), "--tls-cert", join(d, "a.pem"), "--tls-key", join(d, "b.key")]);
    expect(failureLine(m)).toMatch(new RegExp(`^error: --tls-key ${join(d, "b.key")}: does not match --tls-cert ${join(d, "a.pem")}`));
  });

  it("--config that is not JSON and --derp-map that is missing name the file", async () => {
    const d = fresh();
    writeFileSync(join(d, "c.json"), "{ listen: ");
    const c = await serveExpectingExit([...base(d), "--config", join(d, "c.json")]);
    expect(failureLine(c)).toMatch(new RegExp(`^error: --config ${join(d, "c.json")}: not valid JSON`));
    const m = await serveExpectingExit([...base(d), "--derp-map", join(d, "derp.json")]);
    expect(failureLine(m)).toMatch(new RegExp(`^error: --derp-map ${join(d, "derp.json")}: .*no such file or directory`));
  });

  it("--oidc-issuer that does not answer discovery stops startup", async () => {
    const d = fresh();
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const r = await serveExpectingExit([...base(d), "--oidc-issuer", issuer, "--oidc-client-id", "c", "--oidc-client-secret", "s"]);
    expect(failureLine(r)).toMatch(new RegExp(`^error: --oidc-issuer ${issuer}: discovery failed`));
  });

  it("--db naming an unreachable PostgreSQL server says so with the password redacted", async () => {
    const d = fresh();
    const port = await freePort();
    const r = await serveExpectingExit([...base(d), "--db", `postgres://lattice:hunter2@127.0.0.1:${port}/lattice`]);
    const line = failureLine(r);
    expect(line).toMatch(new RegExp(`^error: --db postgres://lattice:\\*\\*\\*@127\\.0\\.0\\.1:${port}/lattice: cannot connect: .*ECONNREFUSED`));
    expect(line).not.toContain("hunter2");
  });
});

describe("SQLite files hold secrets: created 0600, refused when others can read them", () => {
  it("a new database, its -wal/-shm/-lock files are 0600 and a created directory 0700", async () => {
    const d = fresh();
    const s = await startServer({ dir: d, db: join(d, "new", "deeper", "lattice.db") });
    try {
      expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
      for (const f of ["", "-wal", "-shm", "-lock"]) expect([f, mode(`${s.db}${f}`).toString(8)]).toEqual([f, "600"]);
      expect(mode(join(d, "new")).toString(8)).toBe("700");
      expect(mode(join(d, "new", "deeper")).toString(8)).toBe("700");
    } finally {
      await s.stop();
    }
  });

  it("an existing group/world-readable database (or -wal) is refused naming the file and the way out", async () => {
    const d = fresh();
    const s = await startServer({ dir: d });
    await s.kill9(); // leaves -wal and -shm behind
    chmodSync(`${s.db}-wal`, 0o640);
    const args = ["--listen", "127.0.0.1:0", "--socket", join(d, "s2.sock"), "--db", s.db];
    const w = await serveExpectingExit(args);
    expect(failureLine(w)).toBe(
      `error: --db ${s.db}: ${s.db}-wal holds secrets but has mode 0640 (group/others may access it); run \`chmod 600 ${s.db}-wal\` or pass --allow-insecure-permissions`,
    );
    chmodSync(`${s.db}-wal`, 0o600);
    chmodSync(s.db, 0o644);
    const r = await serveExpectingExit(args);
    expect(failureLine(r)).toMatch(new RegExp(`^error: --db ${s.db}: ${s.db} holds secrets but has mode 0644`));
    expect(mode(s.db)).toBe(0o644); // not changed behind the user's back
  });

  it("--allow-insecure-permissions (or LATTICE_CONTROL_ALLOW_INSECURE_PERMISSIONS) starts anyway", async () => {
    const d = fresh();
    const db = join(d, "lattice.db");
    writeFileSync(db, "", { mode: 0o644 });
    chmodSync(db, 0o644);
    const a = await startServer({ dir: d, db, args: ["--allow-insecure-permissions"] });
    await a.stop();
    const b = await startServer({ dir: d, db, env: { LATTICE_CONTROL_ALLOW_INSECURE_PERMISSIONS: "true" } });
    await b.stop();
    expect(mode(db)).toBe(0o644);
  });
});

describe("one server per SQLite database", () => {
  it("a second server on the same file refuses to start while the first runs, and starts after it stopped", async () => {
    const a = await startServer();
    const d = fresh();
    const port = await freePort();
    const args = ["--listen", `127.0.0.1:${port}`, "--socket", join(d, "s.sock"), "--db", a.db];
    try {
      const r = await serveExpectingExit(args);
      expect(failureLine(r)).toBe(`error: --db ${a.db}: another lattice-control is running on this database (it holds the lock on ${a.db}-lock); run one server per database`);
      expect(await tcpListening(port)).toBe(false);
      expect((await a.cli(["users", "create", "alice"])).code).toBe(0); // the first is unaffected
    } finally {
      await a.stop();
    }
    const b = await startServer({ dir: d, db: a.db });
    expect((await b.cli(["users", "list"])).stdout).toContain("alice");
    await b.stop();
  });
});
