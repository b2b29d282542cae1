// Test helper run as a child process (the pg driver cannot load under the test runner):
// builds a database as an older lattice-control left it (migrations up to 0002) with the
// given users, then applies the current migrations through the server's own data layer
// (dist build) and prints the users and the error of one duplicate insert as JSON.
// Usage: node migrate-upgrade.mjs <db> '[{"name": "...", "email": "..."}, ...]'
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import SQLite from "better-sqlite3";
import { chmodSync, existsSync } from "node:fs";
import { migrationsFor } from "../dist/db/migrations.js";
import { isPostgresUrl, openDatabase } from "../dist/db/open.js";

const [db, spec] = process.argv.slice(2);
const users = JSON.parse(spec);
const kind = isPostgresUrl(db) ? "postgres" : "sqlite";
let kysely;
if (kind === "postgres") {
  const { default: pg } = await import("pg");
  kysely = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db, max: 2 }) }) });
} else {
  kysely = new Kysely({ dialect: new SqliteDialect({ database: new SQLite(db) }) });
}
const migrator = new Migrator({ db: kysely, provider: { getMigrations: async () => migrationsFor(kind) } });
const old = await migrator.migrateTo("0002_oidc_identity");
if (old.error) throw old.error;
let t = 1000;
for (const u of users) await kysely.insertInto("users").values({ name: u.name, email: u.email ?? null, display_name: null, password_hash: null, created_at: t++ }).execute();
await kysely.destroy();
// The server refuses database files others can read; an old server's file is made private first.
if (kind === "sqlite") for (const f of [db, `${db}-wal`, `${db}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);

const d = await openDatabase(db); // applies 0003 and later
try {
  const rows = await d.kysely.selectFrom("users").select(["id", "name", "email", "role"]).orderBy("id").execute();
  let dupError = null;
  try {
    await d.kysely.insertInto("users").values({ name: "late", email: String(users.find((u) => u.email)?.email ?? "x@y").toUpperCase(), display_name: null, password_hash: null, created_at: 9999 }).execute();
  } catch (e) {
    dupError = String(e.code ?? e.message);
  }
  let ownerError = null;
  try {
    await sql`UPDATE users SET role = 'owner' WHERE role <> 'owner'`.execute(d.kysely);
  } catch (e) {
    ownerError = String(e.code ?? e.message);
  }
  process.stdout.write(JSON.stringify({ rows, dupError, ownerError }) + "\n");
} finally {
  await d.close();
}
