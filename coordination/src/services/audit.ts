/**
 * The audit log (issue 11): one row per administrative change — who, when, what, to what,
 * from where, and details (a policy change carries the old→new unified diff). Written by
 * the REST API (admin socket, API keys) and the web console after the change succeeded;
 * read by the console's Logs page, `GET /api/v1/audit` and `lattice-control audit`.
 *
 * Entries are paged newest first by id (a cursor, so paging is stable while entries are
 * added). Nothing secret is ever stored: keys by prefix, never passwords.
 */
import { createTwoFilesPatch } from "diff";
import { ValidationError } from "../errors.js";
import { parseJson, type ServiceContext } from "./context.js";

/** Who did something and from where. */
export interface AuditActor {
  /** A login name, `admin-socket`, or `api-key <prefix>`. */
  actor: string;
  /** The acting user's id, when a user acted. */
  userId: number | null;
  /** The client address, or `admin-socket`. */
  source: string;
}

/** One entry as the API shows it. */
export interface AuditEntry {
  id: number;
  /** ISO 8601. */
  at: string;
  actor: string;
  action: string;
  target: string;
  source: string;
  details: Record<string, unknown>;
}

/** A page of entries, newest first; `next` is the cursor for the following (older) page. */
export interface AuditPage {
  entries: AuditEntry[];
  next: number | null;
}

/** Most entries per page. */
export const MAX_AUDIT_PAGE = 500;

/** A unified diff of two policy texts (`policy (old)` → `policy (new)`), "" when equal. */
export function policyDiff(oldText: string, newText: string): string {
  return textDiff("policy", oldText, newText);
}

/** A unified diff of two texts (`<what> (old)` → `<what> (new)`), "" when equal. */
export function textDiff(what: string, oldText: string, newText: string): string {
  if (oldText === newText) return "";
  return createTwoFilesPatch(`${what} (old)`, `${what} (new)`, oldText, newText, undefined, undefined, { context: 3 })
    .split("\n")
    .filter((l) => !l.startsWith("====="))
    .join("\n");
}

/** Audit log storage. */
export class AuditService {
  /**
   * @param onRecord called after each entry is stored (the server logs one line per admin
   * action with it).
   */
  constructor(
    private readonly ctx: ServiceContext,
    private readonly onRecord: (e: Omit<AuditEntry, "id" | "at">) => void = () => {},
  ) {}

  /** Records one change. `details` must not contain secrets. */
  async record(who: AuditActor, action: string, target: string, details: Record<string, unknown> = {}): Promise<void> {
    await this.ctx.db.kysely
      .insertInto("audit_log")
      .values({
        at: this.ctx.now(),
        actor: who.actor.slice(0, 256),
        actor_user_id: who.userId,
        action,
        target: target.slice(0, 512),
        source: who.source.slice(0, 128),
        details: JSON.stringify(details),
      })
      .execute();
    this.onRecord({ actor: who.actor, action, target, source: who.source, details });
  }

  /**
   * Entries newest first. `before`: only ids below it (the previous page's `next`);
   * `since`: only entries at or after this time (ms); `limit` 1–500 (default 50).
   * @throws {ValidationError} for a limit out of range.
   */
  async list(o: { before?: number | undefined; since?: number | undefined; limit?: number | undefined } = {}): Promise<AuditPage> {
    const limit = o.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_PAGE) throw new ValidationError(`limit: ${JSON.stringify(limit)} must be between 1 and ${MAX_AUDIT_PAGE}`);
    let q = this.ctx.db.kysely.selectFrom("audit_log").selectAll();
    if (o.before !== undefined) q = q.where("id", "<", o.before);
    if (o.since !== undefined) q = q.where("at", ">=", o.since);
    const rows = await q.orderBy("id", "desc").limit(limit + 1).execute();
    const page = rows.slice(0, limit);
    return {
      entries: page.map((r) => ({
        id: r.id,
        at: new Date(Number(r.at)).toISOString(),
        actor: r.actor,
        action: r.action,
        target: r.target,
        source: r.source,
        details: parseJson<Record<string, unknown>>(r.details, {}),
      })),
      next: rows.length > limit ? page[page.length - 1]!.id : null,
    };
  }
}
