/**
 * Opens the coordination database: an SQLite file (WAL, synchronous=FULL, so an
 * acknowledged write survives kill -9 and power loss) or PostgreSQL for a
 * `postgres://` URL. Takes the database lock (db/lock.ts: one server per database),
 * then runs migrations before returning.
 *
 * SQLite files hold the cookie secret, sessions and the server's private keys: the
 * database, its `-wal`/`-shm` (SQLite gives them the database file's mode) and `-lock`
 * files are created 0600, a directory Lattice creates 0700, and existing files that
 * group/others may access are refused unless `allowInsecurePermissions`.
 */
import { Kysely, PostgresDialect, SqliteDialect } from "kysely";
import SQLite from "better-sqlite3";
import { accessSync, constants } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Database } from "./schema.js";
import { migrate, type DbKind } from "./migrations.js";
import { lockPostgres, lockSqlite, sqliteLockPath, type DbLock } from "./lock.js";
import { StartupError, describeSystemError } from "../errors.js";
import { checkPrivateFile, createPrivateFile, ensureDirectory, type SettingRef } from "../startup/files.js";

/** An open database handle plus its engine. */
export interface Db {
  kysely: Kysely<Database>;
  kind: DbKind;
  /** Closes every connection and releases the database lock. */
  close(): Promise<void>;
}

/** Options for {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Accept existing SQLite files that group/others may access (default false). */
  allowInsecurePermissions?: boolean;
  /** Called once when the PostgreSQL lock connection is lost while open. */
  onLockLost?: (e: Error) => void;
  /**
   * Take the one-server-per-database lock (default true). Only a tool that works on the
   * database beside a running server (e.g. the tests' db-update.mjs) passes false.
   */
  lock?: boolean;
}

/** True when the location names a PostgreSQL server. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** The location as shown in messages: a PostgreSQL URL's password replaced by `***`. */
export function redactDbLocation(location: string): string {
  if (!isPostgresUrl(location)) return location;
  try {
    const u = new URL(location);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return location.replace(/:\/\/([^:@/]*):[^@/]*@/, "://$1:***@");
  }
}

/**
 * Opens (and migrates) the database at a file path or `postgres://` URL, holding its lock
 * until `close()`.
 * @throws {StartupError} `db_unavailable`, `db_locked` or `insecure_permissions`, naming
 *   `--db` and the location; nothing stays open when it throws.
 */
export async function openDatabase(location: string, o: OpenDatabaseOptions = {}): Promise<Db> {
  const shown = redactDbLocation(location);
  let kysely: Kysely<Database>;
  let kind: DbKind;
  let lock: DbLock | undefined;
  if (isPostgresUrl(location)) {
    kind = "postgres";
    // Loaded only when used, so SQLite installs never touch the pg driver.
    const { default: pg } = await import("pg");
    if (o.lock !== false) lock = await lockPostgres(pg, location, shown, o.onLockLost ?? (() => {}));
    // int8 (bigint, count(*)) as JS numbers: our values are millisecond timestamps and counts.
    const types = {
      getTypeParser(oid: number, format?: any) {
        if (oid === 20) return (v: string) => Number(v);
        return (pg.types.getTypeParser as any)(oid, format);
      },
    };
    const pool = new pg.Pool({ connectionString: location, max: 10, types, application_name: "lattice-control" });
    // An idle client losing its connection emits 'error' on the pool; without a listener
    // that would crash the process. The next query fails and reports it instead.
    pool.on("error", () => {});
    kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    kind = "sqlite";
    if (location === ":memory:") {
      kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(location) }) });
    } else {
      const file = resolve(location);
      const ref: SettingRef = { code: "db_unavailable", setting: "--db", value: shown };
      ensureDirectory(dirname(file), ref);
      for (const f of [file, `${file}-wal`, `${file}-shm`, sqliteLockPath(file)]) checkPrivateFile(f, ref, !!o.allowInsecurePermissions);
      if (o.lock !== false) {
        createPrivateFile(sqliteLockPath(file), ref);
        lock = lockSqlite(sqliteLockPath(file), shown);
      }
      try {
        createPrivateFile(file, ref);
        try {
          accessSync(file, constants.R_OK | constants.W_OK);
          accessSync(dirname(file), constants.W_OK);
        } catch (e) {
          throw new StartupError("db_unavailable", "--db", shown, `${describeSystemError(e)}: the database file and its directory must be writable (SQLite keeps ${file}-wal and ${file}-shm beside it)`);
        }
        let database: SQLite.Database;
        try {
          database = new SQLite(file);
        } catch (e) {
          throw new StartupError("db_unavailable", "--db", shown, `cannot open: ${(e as Error).message}`);
        }
        try {
          database.pragma("journal_mode = WAL");
          database.pragma("synchronous = FULL");
          database.pragma("foreign_keys = ON");
          database.pragma("busy_timeout = 5000");
        } catch (e) {
          database.close();
          throw new StartupError("db_unavailable", "--db", shown, `cannot open: ${(e as Error).message}`);
        }
        kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
      } catch (e) {
        await lock?.release();
        throw e;
      }
    }
  }
  try {
    await migrate(kysely, kind);
  } catch (e) {
    await kysely.destroy().catch(() => {});
    await lock?.release();
    if (e instanceof StartupError) throw e;
    throw new StartupError("db_unavailable", "--db", shown, `cannot prepare the schema: ${(e as Error).message}`);
  }
  return {
    kysely,
    kind,
    async close() {
      try {
        await kysely.destroy();
      } finally {
        await lock?.release();
      }
    },
  };
}

/** True when an error is a unique-constraint violation in either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === "23505" || err?.code === "SQLITE_CONSTRAINT_UNIQUE" || err?.code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
