// Test helper run as a child process: applies one UPDATE to a lattice-control database
// (SQLite path or postgres:// URL) through the server's own data layer (dist build).
// Usage: node db-update.mjs <db> '{"table": "...", "set": {...}, "where": ["col", value]}'
import { openDatabase } from "../dist/db/open.js";

const [db, spec] = process.argv.slice(2);
const { table, set, where } = JSON.parse(spec);
// Beside the running server: without the one-server-per-database lock it holds.
const d = await openDatabase(db, { lock: false });
try {
  const r = await d.kysely.updateTable(table).set(set).where(where[0], "=", where[1]).executeTakeFirst();
  process.stdout.write(`${Number(r.numUpdatedRows)}\n`);
} finally {
  await d.close();
}
