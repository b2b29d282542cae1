/**
 * The database lock: one `lattice-control` per database, held for the server's life.
 * Several servers on one database would each keep their own in-memory view of the
 * tailnet (map streams, change bus), so nodes on one never see changes made through
 * the other; until replicas are supported the second server refuses to start.
 *
 * - SQLite: an exclusive SQLite lock (POSIX fcntl byte-range lock, `locking_mode =
 *   EXCLUSIVE`, journal in memory, `BEGIN EXCLUSIVE`) on the companion file `<db>-lock`, through its own
 *   connection. The kernel drops fcntl locks when the process ends, kill -9 included, so
 *   a crash never leaves a stale lock; the file's existence means nothing. The lock is on
 *   a separate file so that `sqlite3 lattice.db .backup` and other readers keep working.
 *   (Like SQLite itself, this needs a local file system: fcntl locks on NFS are unreliable.)
 * - PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated
 *   connection. Advisory locks are per database, and PostgreSQL releases them when the
 *   session ends (the server process dying closes its connection). When that connection
 *   is lost while serving, `onLost` is called: the lock may now be taken by another server.
 */
import SQLite from "better-sqlite3";
import type pg from "pg";
import { describeSystemError, StartupError } from "../errors.js";

/** A held database lock. */
export interface DbLock {
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

/**
 * The advisory lock key: the ASCII bytes "lattice\x01" as a signed 64-bit integer. In
 * `pg_locks` it shows as classid 0x6c617474, objid 0x69636501, objsubid 1.
 */
export const PG_LOCK_KEY = "7809651272170300673";
const PG_LOCK_CLASSID = 0x6c617474;
const PG_LOCK_OBJID = 0x69636501;

/** The lock file beside an SQLite database file. */
export function sqliteLockPath(file: string): string {
  return `${file}-lock`;
}

/**
 * Takes the exclusive lock on `lockFile` without waiting.
 * @param shown the database as named in messages (the `--db` value).
 * @throws {StartupError} `db_locked` when another process holds it, `db_unavailable` when
 *   the lock file cannot be opened.
 */
export function lockSqlite(lockFile: string, shown: string): DbLock {
  let conn: SQLite.Database;
  try {
    conn = new SQLite(lockFile, { timeout: 0 });
  } catch (e) {
    throw new StartupError("db_unavailable", "--db", shown, `cannot open the lock file ${lockFile}: ${describeSystemError(e)}`);
  }
  try {
    // Journal in memory: nothing is ever written, and no `-lock-journal` file appears
    // (journal_mode = OFF is ignored on an empty file and leaves one behind).
    conn.pragma("locking_mode = EXCLUSIVE");
    conn.pragma("journal_mode = MEMORY");
    conn.exec("BEGIN EXCLUSIVE");
  } catch (e) {
    conn.close();
    if ((e as { code?: string }).code === "SQLITE_BUSY") {
      throw new StartupError(
        "db_locked",
        "--db",
        shown,
        `another lattice-control is running on this database (it holds the lock on ${lockFile}); run one server per database`,
      );
    }
    throw new StartupError("db_unavailable", "--db", shown, `cannot lock ${lockFile}: ${(e as Error).message}`);
  }
  return {
    async release() {
      if (conn.open) conn.close();
    },
  };
}

/**
 * Takes the advisory lock on a dedicated connection without waiting.
 * @param pgm the `pg` module; `shown` the URL with its password redacted.
 * @param onLost called once if the connection (and so the lock) is lost before release.
 * @throws {StartupError} `db_locked` naming the holder's pid, address and start time when
 *   another session holds it; `db_unavailable` when the server cannot be reached (10 s).
 */
/** The server a `postgres://` URL names, as `host:port` (the unix socket directory when given as `?host=/dir`). */
export function pgHost(url: string): string {
  try {
    const u = new URL(url);
    const sock = u.searchParams.get("host");
    if (sock) return `${sock} (unix socket)`;
    return `${u.hostname || "localhost"}:${u.port || "5432"}`;
  } catch {
    return "the PostgreSQL server";
  }
}

export async function lockPostgres(pgm: typeof pg, url: string, shown: string, onLost: (e: Error) => void): Promise<DbLock> {
  const client = new pgm.Client({ connectionString: url, application_name: "lattice-control (lock)", connectionTimeoutMillis: 10_000, keepAlive: true });
  let released = false;
  const lost = (e: Error) => {
    if (released) return;
    released = true;
    onLost(e);
  };
  // Before connect: a failing connection emits 'error' too, which must not crash the process.
  client.on("error", (e) => lost(e));
  client.on("end", () => lost(new Error("the database lock's connection was closed")));
  try {
    await client.connect();
  } catch (e) {
    released = true;
    await client.end().catch(() => {});
    throw new StartupError("db_unavailable", "--db", shown, `cannot connect: ${describeSystemError(e instanceof AggregateError && e.errors.length > 0 ? e.errors[0] : e)} (PostgreSQL server ${pgHost(url)})`);
  }
  let ok: boolean;
  try {
    ok = (await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS ok", [PG_LOCK_KEY])).rows[0]!.ok;
  } catch (e) {
    released = true;
    await client.end().catch(() => {});
    throw new StartupError("db_unavailable", "--db", shown, `cannot take the database lock: ${(e as Error).message}`);
  }
  if (!ok) {
    let holder = "";
    try {
      const r = await client.query<{ pid: number; addr: string | null; since: string | null }>(
        `SELECT a.pid, a.client_addr::text AS addr, to_char(a.backend_start, 'YYYY-MM-DD"T"HH24:MI:SSOF') AS since
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [PG_LOCK_CLASSID, PG_LOCK_OBJID],
      );
      const h = r.rows[0];
      if (h) holder = ` (held by PostgreSQL backend pid ${h.pid}${h.addr ? ` for ${h.addr}` : ""}${h.since ? ` since ${h.since}` : ""})`;
    } catch {
      // Without the pg_stat_activity details the message is still clear.
    }
    released = true;
    await client.end().catch(() => {});
    throw new StartupError(
      "db_locked",
      "--db",
      shown,
      `another lattice-control is running on this database: it holds the database lock${holder}; run one server per database`,
    );
  }
  return {
    async release() {
      if (released) return;
      released = true;
      await client.end().catch(() => {});
    },
  };
}
