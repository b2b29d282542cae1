/**
 * SSH check mode, control half (issue 9; Tailscale's HoldAndDelegate flow). The policy
 * compiler gives `check` rules the action
 * `{holdAndDelegate: "<server>/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER"}`;
 * the destination node's SSH server expands it (node ids are the numeric tailcfg
 * `Node.ID`, i.e. `nodes.id`) and GETs it over its Noise channel:
 *
 * - {@link SshCheckService.action}: the destination asks about a connection. A tagged
 *   source is rejected at once (nobody can re-authenticate); an approval by the source's
 *   user for (destination, rule, local user) younger than the rule's checkPeriod accepts
 *   at once; otherwise a pending check is stored and the node gets the approval URL as a
 *   message and `<server>/machine/ssh/check/<id>/wait` to poll.
 * - {@link SshCheckService.wait}: long poll (at most `sshCheckWaitMs`) until the person
 *   decides on `/ssh/check/<id>` ({@link SshCheckService.decide}); Accept with the rule's
 *   flags, or Reject when denied or expired; when the poll times out first, the same wait
 *   URL again (HoldAndDelegate) so the node polls on.
 *
 * Only the destination node may ask about or wait on its checks (403 otherwise); only the
 * source node's owner may decide (403 otherwise). Pending checks are capped per
 * destination (`maxPendingSshChecksPerNode`; beyond it the connection is rejected with a
 * message) and expire after `sshCheckTimeoutMs` (Tailscale holds a session 30 minutes).
 */
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Selectable } from "kysely";
import { loginName, sshAcceptAction, SshCheckIndex, type SshCheckRule } from "@lattice/policy";
import type { SSHAction } from "@lattice/types";
import type { NodeRow, SshChecksTable, UserRow } from "../db/schema.js";
import { ControlError, ForbiddenError, NotFoundError } from "../errors.js";
import { parseJson, type ServiceContext } from "./context.js";
import { isExpired } from "./nodes.js";
import type { PolicyService } from "./policy.js";
import { topologyFrom } from "./topology.js";

/** A check row. */
export type SshCheckRow = Selectable<SshChecksTable>;

/** Limits of check mode (defaults below). */
export interface SshCheckLimits {
  /** A pending check expires this long after it was made, ms (default 30 min, Tailscale's hold). */
  sshCheckTimeoutMs: number;
  /** Longest single wait poll, ms (default 25 s; the node polls again). */
  sshCheckWaitMs: number;
  /** Most live pending checks per destination node (default 32). */
  maxPendingSshChecksPerNode: number;
}

/** Default {@link SshCheckLimits}. */
export const DEFAULT_SSH_CHECK_LIMITS: SshCheckLimits = {
  sshCheckTimeoutMs: 30 * 60_000,
  sshCheckWaitMs: 25_000,
  maxPendingSshChecksPerNode: 32,
};

/** Decided checks stay readable (the node learns "expired"/"denied", the page its state) this long after they expired, ms. */
const KEEP_AFTER_EXPIRY_MS = 3600_000;
/** Approvals older than the longest checkPeriod (168 h) are never used again. */
const MAX_CHECK_PERIOD_MS = 168 * 3600_000;

/** Check ids: 16 random bytes, base64url (22 characters). */
export const SSH_CHECK_ID = /^[A-Za-z0-9_-]{22}$/;

/** What the approval page shows about a check. */
export interface SshCheckView {
  row: SshCheckRow;
  /** The source user's login name. */
  user: string;
  srcName: string;
  dstName: string;
  /** "pending" | "approved" | "denied" | "expired". */
  state: string;
}

/**
 * Check-mode bookkeeping (see the module comment). Reads the tailnet (policy, users,
 * nodes) from the database, keeping the rule index until the change bus reports a
 * change the compiler reads.
 */
export class SshCheckService {
  readonly #decided = new EventEmitter();
  #index: { version: number; gen: number; index: SshCheckIndex } | null = null;
  /** Bumped on every change the rule index depends on. */
  #gen = 0;
  /** Serializes action() per destination so its count-then-insert is atomic within this server (one node's flood does not queue the others). */
  readonly #chains = new Map<number, Promise<unknown>>();
  readonly limits: SshCheckLimits;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly policies: Pick<PolicyService, "current">,
    limits: Partial<SshCheckLimits> = {},
  ) {
    this.limits = { ...DEFAULT_SSH_CHECK_LIMITS, ...limits };
    this.#decided.setMaxListeners(0);
    ctx.bus.subscribe((ch) => {
      if (ch.policyChanged || ch.userProfilesChanged || ch.nodesAdded?.length || ch.nodesRemoved?.length || ch.nodesChanged?.length) this.#gen++;
    });
  }

  /** The URL a person opens to decide on check `id`. */
  pageUrl(id: string): string {
    return `${this.ctx.options.serverUrl}/ssh/check/${id}`;
  }

  /** The URL the destination node polls for check `id`. */
  waitUrl(id: string): string {
    return `${this.ctx.options.serverUrl}/machine/ssh/check/${id}/wait`;
  }

  /**
   * Answers `GET /machine/ssh/action/<srcId>/to/<dstId>?local_user=<user>` from the node
   * `requester` (the node of the Noise channel's machine key). Returns the SSHAction
   * (accept, reject with a message, or hold with the approval URL).
   * @throws ForbiddenError 403 `ssh_check_forbidden` when the requester is not node `dstId`.
   */
  action(requester: NodeRow | undefined, srcId: number, dstId: number, localUser: string): Promise<SSHAction> {
    const run = (this.#chains.get(dstId) ?? Promise.resolve()).then(() => this.#action(requester, srcId, dstId, localUser));
    const tail = run.catch(() => {});
    this.#chains.set(dstId, tail);
    void tail.then(() => {
      if (this.#chains.get(dstId) === tail) this.#chains.delete(dstId);
    });
    return run;
  }

  async #action(requester: NodeRow | undefined, srcId: number, dstId: number, localUser: string): Promise<SSHAction> {
    this.#assertDestination(requester, dstId);
    const db = this.ctx.db.kysely;
    const now = this.ctx.now();
    const dst = requester!;
    const src = await db.selectFrom("nodes").selectAll().where("id", "=", srcId).executeTakeFirst();
    if (!src || !src.approved) return reject(`lattice: node ${srcId} is not a node of this tailnet`);
    if (src.user_id == null || parseJson<string[]>(src.tags, []).length > 0) {
      return reject(
        `lattice: ${src.given_name} cannot be checked: tagged devices have no user to re-authenticate; ` +
          `SSH from ${src.given_name} to ${dst.given_name} needs an "accept" rule, not "check".`,
      );
    }
    if (isExpired(src, now)) return reject(`lattice: ${src.given_name}'s node key has expired; log in again on it`);
    const user = await db.selectFrom("users").selectAll().where("id", "=", src.user_id).executeTakeFirst();
    if (!user) return reject(`lattice: the owner of ${src.given_name} no longer exists`);
    const rule = await this.#rule(srcId, dstId, localUser);
    if (!rule) {
      return reject(`lattice: tailnet policy has no check rule that lets ${loginName(user)} on ${src.given_name} SSH as ${localUser} to ${dst.given_name}`);
    }
    const ruleKey = ruleKeyOf(rule);
    const periodMs = Math.round(rule.checkPeriodSec * 1000);
    if (periodMs > 0) {
      const ok = await db
        .selectFrom("ssh_approvals")
        .select("approved_at")
        .where("user_id", "=", user.id)
        .where("dst_node_id", "=", dstId)
        .where("rule_key", "=", ruleKey)
        .where("local_user", "=", localUser)
        .executeTakeFirst();
      if (ok && ok.approved_at <= now && now - ok.approved_at < periodMs) return sshAcceptAction();
    }
    const pending = Number(
      (
        await db
          .selectFrom("ssh_checks")
          .select((eb) => eb.fn.countAll().as("n"))
          .where("dst_node_id", "=", dstId)
          .where("status", "=", "pending")
          .where("expires_at", ">", now)
          .executeTakeFirstOrThrow()
      ).n,
    );
    if (pending >= this.limits.maxPendingSshChecksPerNode) {
      return reject(
        `lattice: too many SSH checks are waiting for approval on ${dst.given_name} (limit ${this.limits.maxPendingSshChecksPerNode}); ` +
          `approve or deny them, or wait for them to expire`,
      );
    }
    const id = this.ctx.random(16).toString("base64url");
    await db
      .insertInto("ssh_checks")
      .values({
        id,
        src_node_id: srcId,
        dst_node_id: dstId,
        user_id: user.id,
        local_user: localUser,
        rule_key: ruleKey,
        rule_index: rule.index,
        check_period: periodMs,
        status: "pending",
        created_at: now,
        expires_at: now + this.limits.sshCheckTimeoutMs,
        decided_at: null,
      })
      .execute();
    return {
      message: `\n# Lattice SSH requires an additional check.\n# To authenticate, visit: ${this.pageUrl(id)}\n`,
      holdAndDelegate: this.waitUrl(id),
    };
  }

  /**
   * Answers `GET /machine/ssh/check/<id>/wait` from `requester`: waits (at most
   * `sshCheckWaitMs`, less when the check expires sooner, ending early when `signal`
   * aborts) for the decision. Accept / Reject when decided or expired; otherwise the same
   * wait URL as HoldAndDelegate.
   * An unknown id of the issued form answers Reject (the check was swept or went with its
   * node or user), which reveals nothing about other checks.
   * @throws NotFoundError 404 `ssh_check_not_found` for a malformed id; ForbiddenError 403
   *   when `requester` is not the check's destination.
   */
  async wait(requester: NodeRow | undefined, id: string, signal: AbortSignal): Promise<SSHAction> {
    let row: SshCheckRow;
    try {
      row = await this.#row(id);
    } catch (e) {
      // Swept (an hour after expiry) or gone with its node or user: a clear end, not 30 minutes of retried 404s.
      if (e instanceof NotFoundError && SSH_CHECK_ID.test(id)) return reject("lattice: this SSH check no longer exists (expired, or its node or user was deleted); connect again.");
      throw e;
    }
    this.#assertDestination(requester, row.dst_node_id);
    if (row.status === "pending" && row.expires_at > this.ctx.now()) {
      const ms = Math.min(this.limits.sshCheckWaitMs, row.expires_at - this.ctx.now());
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#decided.off(id, done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        this.#decided.on(id, done);
        signal.addEventListener("abort", done, { once: true });
      });
      if (signal.aborted) throw new ControlError("client_gone", "the node stopped waiting", 499);
      row = await this.#row(id);
    }
    if (row.status === "approved") {
      // The policy may have changed while the person decided: the rule must still let this connection in.
      const rule = await this.#rule(row.src_node_id, row.dst_node_id, row.local_user);
      if (!rule || ruleKeyOf(rule) !== row.rule_key) return reject("lattice: the tailnet policy changed while the SSH check was pending; connect again.");
    }
    return this.#outcome(row);
  }

  #outcome(row: SshCheckRow): SSHAction {
    if (row.status === "approved") return sshAcceptAction();
    if (row.status === "denied") return reject("lattice: the SSH check was denied.");
    if (row.expires_at <= this.ctx.now()) {
      return reject(`lattice: the SSH check was not approved within ${Math.round(this.limits.sshCheckTimeoutMs / 60_000)} minutes; connect again to get a new link.`);
    }
    return { holdAndDelegate: this.waitUrl(row.id) };
  }

  /**
   * What the approval page shows about check `id`.
   * @throws NotFoundError 404 for an unknown (or long expired) check.
   */
  async view(id: string): Promise<SshCheckView> {
    const row = await this.#row(id);
    const db = this.ctx.db.kysely;
    const [user, src, dst] = await Promise.all([
      db.selectFrom("users").selectAll().where("id", "=", row.user_id).executeTakeFirst(),
      db.selectFrom("nodes").select("given_name").where("id", "=", row.src_node_id).executeTakeFirst(),
      db.selectFrom("nodes").select("given_name").where("id", "=", row.dst_node_id).executeTakeFirst(),
    ]);
    const state = row.status === "pending" && row.expires_at <= this.ctx.now() ? "expired" : row.status;
    return { row, user: user ? loginName(user as UserRow) : "?", srcName: src?.given_name ?? "?", dstName: dst?.given_name ?? "?", state };
  }

  /**
   * Records `userId`'s decision on check `id` and wakes the node waiting on it. Approving
   * also records the approval time for (user, destination, rule, local user), which spares
   * checks within the rule's checkPeriod.
   * @throws NotFoundError 404; ForbiddenError 403 `ssh_check_wrong_user` when `userId` is
   *   not the source node's owner; ControlError 409 `ssh_check_decided` / 410 `ssh_check_expired`.
   */
  async decide(id: string, userId: number, approve: boolean): Promise<SshCheckRow> {
    const row = await this.#row(id);
    if (row.user_id !== userId) throw new ForbiddenError("this SSH check is for another user; log in as the user who is connecting", "ssh_check_wrong_user");
    const now = this.ctx.now();
    if (row.status !== "pending") throw new ControlError("ssh_check_decided", `this SSH check was already ${row.status}`, 409);
    if (row.expires_at <= now) throw new ControlError("ssh_check_expired", "this SSH check has expired; connect again to get a new link", 410);
    const status = approve ? "approved" : "denied";
    const db = this.ctx.db.kysely;
    const changed = await db.transaction().execute(async (tx) => {
      const r = await tx.updateTable("ssh_checks").set({ status, decided_at: now }).where("id", "=", id).where("status", "=", "pending").executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) return false;
      if (approve) {
        await tx
          .insertInto("ssh_approvals")
          .values({ user_id: row.user_id, dst_node_id: row.dst_node_id, rule_key: row.rule_key, local_user: row.local_user, approved_at: now })
          .onConflict((oc) => oc.columns(["user_id", "dst_node_id", "rule_key", "local_user"]).doUpdateSet({ approved_at: now }))
          .execute();
      }
      return true;
    });
    if (!changed) throw new ControlError("ssh_check_decided", "this SSH check was already decided", 409);
    this.#decided.emit(id);
    return { ...row, status, decided_at: now };
  }

  /** Deletes checks expired over an hour ago and approvals older than the longest checkPeriod. */
  async sweep(): Promise<void> {
    const now = this.ctx.now();
    const db = this.ctx.db.kysely;
    await db.deleteFrom("ssh_checks").where("expires_at", "<", now - KEEP_AFTER_EXPIRY_MS).execute();
    await db.deleteFrom("ssh_approvals").where("approved_at", "<", now - MAX_CHECK_PERIOD_MS).execute();
  }

  async #row(id: string): Promise<SshCheckRow> {
    const row = SSH_CHECK_ID.test(id) ? await this.ctx.db.kysely.selectFrom("ssh_checks").selectAll().where("id", "=", id).executeTakeFirst() : undefined;
    if (!row) throw new NotFoundError("ssh_check", id.slice(0, 64));
    return row;
  }

  #assertDestination(requester: NodeRow | undefined, dstId: number): void {
    if (!requester || requester.id !== dstId || !requester.approved || isExpired(requester, this.ctx.now())) {
      throw new ForbiddenError(`only node ${dstId} itself may ask about SSH checks of node ${dstId}`, "ssh_check_forbidden");
    }
  }

  async #rule(srcId: number, dstId: number, localUser: string): Promise<SshCheckRule | null> {
    const cur = await this.policies.current();
    if (this.#index?.version !== cur.version || this.#index.gen !== this.#gen) {
      const gen = this.#gen;
      const db = this.ctx.db.kysely;
      const [users, nodes] = await Promise.all([db.selectFrom("users").selectAll().orderBy("id").execute(), db.selectFrom("nodes").selectAll().orderBy("id").execute()]);
      try {
        this.#index = { version: cur.version, gen, index: new SshCheckIndex(cur.policy, topologyFrom(users, nodes)) };
      } catch {
        // The stored policy does not compile for this tailnet (the node backend fails closed and reports it): no rule.
        return null;
      }
    }
    return this.#index.index.find(srcId, dstId, localUser);
  }
}

/** The stored form of a rule's content key: SHA-256 hex of {@link SshCheckRule.key}. */
function ruleKeyOf(rule: SshCheckRule): string {
  return createHash("sha256").update(rule.key).digest("hex");
}

function reject(message: string): SSHAction {
  return { reject: true, message };
}
