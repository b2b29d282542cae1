/** Read-only looks into a test server's SQLite file (pending registrations), for flood tests. */
import Database from "better-sqlite3";

/** Live (not completed, not expired) pending registrations and their stored bytes, read from the SQLite file. */
export function pendingRegistrations(db: string, where: { source?: string; machineKey?: string } = {}): { rows: number; bytes: number } {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const cols = (d.prepare("PRAGMA table_info(pending_registrations)").all() as { name: string }[]).map((c) => c.name);
    let sql = "SELECT count(*) AS rows, coalesce(sum(length(request)), 0) AS bytes FROM pending_registrations WHERE completed_at IS NULL AND expires_at > ?";
    const args: unknown[] = [Date.now()];
    if (where.source !== undefined && cols.includes("source")) (sql += " AND source = ?"), args.push(where.source);
    if (where.machineKey !== undefined) (sql += " AND machine_key = ?"), args.push(where.machineKey);
    return d.prepare(sql).get(...args) as { rows: number; bytes: number };
  } finally {
    d.close();
  }
}

/** `expires_at` of a pending registration, or undefined when the row is gone. */
export function expiresAt(db: string, id: string): number | undefined {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return (d.prepare("SELECT expires_at FROM pending_registrations WHERE id = ?").get(id) as { expires_at: number } | undefined)?.expires_at;
  } finally {
    d.close();
  }
}

/** The Hostinfo stored for the node named `givenName`, or undefined. */
export function storedHostinfo(db: string, givenName: string): Record<string, unknown> | undefined {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const row = d.prepare("SELECT hostinfo FROM nodes WHERE given_name = ?").get(givenName) as { hostinfo: string } | undefined;
    return row ? (JSON.parse(row.hostinfo) as Record<string, unknown>) : undefined;
  } finally {
    d.close();
  }
}
