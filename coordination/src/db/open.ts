/**
 * Opens the coordination database: an SQLite file (WAL, synchronous=FULL, so an
 * acknowledged write survives kill -9 and power loss) or PostgreSQL for a
 * `postgres://` URL. Runs migrations before returning.
 */
import { Kysely, PostgresDialect, SqliteDialect } from "kysely";
import SQLite from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Database } from "./schema.js";
import { migrate, type DbKind } from "./migrations.js";

/** An open database handle plus its engine. */
export interface Db {
  kysely: Kysely<Database>;
  kind: DbKind;
  /** Closes every connection. */
  close(): Promise<void>;
}

/** True when the location names a PostgreSQL server. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** Opens (and migrates) the database at a file path or `postgres://` URL. */
export async function openDatabase(location: string): Promise<Db> {
  let kysely: Kysely<Database>;
  let kind: DbKind;
  if (isPostgresUrl(location)) {
    kind = "postgres";
    // Loaded only when used, so SQLite installs never touch the pg driver.
    const { default: pg } = await import("pg");
    // int8 (bigint, count(*)) as JS numbers: our values are millisecond timestamps and counts.
    const types = {
      getTypeParser(oid: number, format?: any) {
        if (oid === 20) return (v: string) => Number(v);
        return (pg.types.getTypeParser as any)(oid, format);
      },
    };
    const pool = new pg.Pool({ connectionString: location, max: 10, types });
    // An idle client losing its connection emits 'error' on the pool; without a listener
    // that would crash the process. The next query fails and reports it instead.
    pool.on("error", () => {});
    kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    kind = "sqlite";
    const file = location === ":memory:" ? location : resolve(location);
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    const database = new SQLite(file);
    database.pragma("journal_mode = WAL");
    database.pragma("synchronous = FULL");
    database.pragma("foreign_keys = ON");
    database.pragma("busy_timeout = 5000");
    kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  }
  try {
    await migrate(kysely, kind);
  } catch (e) {
    await kysely.destroy();
    throw e;
  }
  return { kysely, kind, close: () => kysely.destroy() };
}

/** True when an error is a unique-constraint violation in either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === "23505" || err?.code === "SQLITE_CONSTRAINT_UNIQUE" || err?.code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
