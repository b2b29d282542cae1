/**
 * Interactive registrations: a node without an auth key gets an auth URL
 * (`<server>/register/<id>`); a person logs in on that page and confirms; the node's
 * follow-up request, waiting in {@link RegistrationService.wait}, then completes.
 */
import { EventEmitter } from "node:events";
import type { Selectable } from "kysely";
import type { PendingRegistrationsTable } from "../db/schema.js";
import { ControlError, LimitError, NotFoundError } from "../errors.js";
import { parseJson, type ServiceContext } from "./context.js";
import type { NodeRow } from "../db/schema.js";
import type { NodeService, RegistrationInput } from "./nodes.js";

/** A pending registration row. */
export type PendingRow = Selectable<PendingRegistrationsTable>;

/** Outcome delivered to the nodes waiting on a registration. */
type Outcome = { node: NodeRow } | { error: ControlError };

/**
 * Interactive login bookkeeping. Registrations are unauthenticated (any self-generated
 * machine key may start one), so they are bounded:
 *
 * - per machine key: one live registration; a new node key supersedes the earlier one
 *   (whose waiting node gets 401 registration_superseded);
 * - per source (`ServiceOptions.maxPendingRegistrationsPerSource`, IPv6 per /64) and in
 *   total (`maxPendingRegistrations`): beyond them {@link LimitError} 429
 *   `registration_limit_source` / `registration_limit_total`;
 * - in time: `registrationTimeoutMs` while the node waits (its follow-up request is open),
 *   but only `registrationIdleMs` after it was started or its node stopped waiting;
 * - in size: the stored request is what the node API let through (its body limit).
 *
 * Checks and inserts run one at a time (this server is the database's only writer of
 * registrations), so concurrent floods cannot overshoot the caps.
 */
export class RegistrationService {
  readonly #done = new EventEmitter();
  /** Open follow-up waits per registration id. */
  readonly #waiters = new Map<string, number>();
  /** Serializes start() so count-then-insert is atomic within this server. */
  #startChain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly nodes: NodeService,
  ) {
    this.#done.setMaxListeners(0);
  }

  /**
   * Starts an interactive registration from `source` (a {@link sourceKey}); returns its id
   * and the URL to show the person. Throws LimitError (429) over the per-source or total cap.
   */
  start(input: RegistrationInput, source = "unknown"): Promise<{ id: string; authUrl: string }> {
    const run = this.#startChain.then(() => this.#start(input, source));
    this.#startChain = run.catch(() => {});
    return run;
  }

  async #start(input: RegistrationInput, source: string): Promise<{ id: string; authUrl: string }> {
    const now = this.ctx.now();
    const o = this.ctx.options;
    const db = this.ctx.db.kysely;
    const live = () => db.selectFrom("pending_registrations").where("completed_at", "is", null).where("expires_at", ">", now);
    // The same machine and node key asking again gets the same link while it is live.
    const mine = await live().select(["id", "node_key"]).where("machine_key", "=", input.machineKey).execute();
    const same = mine.find((r) => r.node_key === input.nodeKey);
    if (same) {
      await db.updateTable("pending_registrations").set({ request: JSON.stringify(input) }).where("id", "=", same.id).execute();
      return { id: same.id, authUrl: this.authUrl(same.id) };
    }
    // One live registration per machine: a new node key replaces the earlier one.
    const superseded = mine.map((r) => r.id);
    const count = async (q: ReturnType<typeof live>) =>
      Number((await q.select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);
    const others = (q: ReturnType<typeof live>) => (superseded.length > 0 ? q.where("id", "not in", superseded) : q);
    if ((await count(others(live().where("source", "=", source)))) >= o.maxPendingRegistrationsPerSource) {
      throw new LimitError(
        "registration_limit_source",
        `too many interactive registrations pending from ${source} (limit ${o.maxPendingRegistrationsPerSource}, setting maxPendingRegistrationsPerSource); finish or wait for the others to expire`,
      );
    }
    if ((await count(others(live()))) >= o.maxPendingRegistrations) {
      throw new LimitError(
        "registration_limit_total",
        `too many interactive registrations pending on this server (limit ${o.maxPendingRegistrations}, setting maxPendingRegistrations); try again later or use an auth key`,
      );
    }
    if (superseded.length > 0) {
      await db.deleteFrom("pending_registrations").where("id", "in", superseded).execute();
      const err = new ControlError("registration_superseded", "a newer login from this machine replaced this registration", 401);
      for (const id of superseded) this.#done.emit(id, { error: err } satisfies Outcome);
    }
    const id = this.ctx.random(18).toString("base64url");
    await db
      .insertInto("pending_registrations")
      .values({
        id,
        machine_key: input.machineKey,
        node_key: input.nodeKey,
        request: JSON.stringify(input),
        created_at: now,
        expires_at: now + Math.min(o.registrationIdleMs, o.registrationTimeoutMs),
        user_id: null,
        node_id: null,
        completed_at: null,
        source,
      })
      .execute();
    return { id, authUrl: this.authUrl(id) };
  }

  /** The auth URL for a registration id. */
  authUrl(id: string): string {
    return `${this.ctx.options.serverUrl.replace(/\/+$/, "")}/register/${id}`;
  }

  /** Extracts the id from an auth URL (or a bare id); null when it is not one of ours. */
  idFromUrl(url: string): string | null {
    const m = /\/register\/([A-Za-z0-9_-]{8,64})\/?$/.exec(url) ?? /^([A-Za-z0-9_-]{8,64})$/.exec(url);
    return m ? m[1]! : null;
  }

  /** A live (not expired) pending registration; throws NotFoundError / 410. */
  async get(id: string): Promise<PendingRow & { input: RegistrationInput }> {
    const row = await this.ctx.db.kysely.selectFrom("pending_registrations").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError("registration", id);
    if (row.completed_at == null && row.expires_at <= this.ctx.now()) {
      throw new ControlError("registration_expired", "this registration link has expired; run the login again on the node", 410);
    }
    return { ...row, input: parseJson<RegistrationInput>(row.request, { machineKey: row.machine_key, nodeKey: row.node_key, hostname: "node" }) };
  }

  /** The person confirmed: register the node for them and wake the waiting node. */
  async complete(id: string, userId: number): Promise<NodeRow> {
    const pending = await this.get(id);
    if (pending.completed_at != null) throw new ControlError("registration_done", "this registration was already completed", 409);
    const node = await this.nodes.registerForUser(pending.input, userId);
    await this.ctx.db.kysely
      .updateTable("pending_registrations")
      .set({ user_id: userId, node_id: node.id, completed_at: this.ctx.now() })
      .where("id", "=", id)
      .execute();
    this.#done.emit(id, { node } satisfies Outcome);
    return node;
  }

  /**
   * Waits until the registration completes (resolves with the node) for the machine that
   * started it; rejects when unknown, expired, superseded, for another machine, or when
   * `signal` aborts. While a node waits the registration lives `registrationTimeoutMs`
   * from its start; when the last waiter leaves, `registrationIdleMs` from then.
   */
  async wait(id: string, machineKey: string, signal: AbortSignal): Promise<NodeRow> {
    const pending = await this.get(id);
    if (pending.machine_key !== machineKey) throw new NotFoundError("registration", id);
    const finished = async (): Promise<NodeRow | undefined> => {
      const p = await this.get(id);
      if (p.node_id == null) return undefined;
      return (await this.nodes.rows([p.node_id]))[0];
    };
    const already = await finished();
    if (already) return already;
    const o = this.ctx.options;
    const deadline = pending.created_at + o.registrationTimeoutMs;
    const db = this.ctx.db.kysely;
    const setExpiry = (t: number) =>
      db.updateTable("pending_registrations").set({ expires_at: t }).where("id", "=", id).where("completed_at", "is", null).execute();
    this.#waiters.set(id, (this.#waiters.get(id) ?? 0) + 1);
    await setExpiry(deadline);
    return new Promise<NodeRow>((resolve, reject) => {
      const timeout = setTimeout(() => cleanup(new ControlError("registration_expired", "registration expired before anyone confirmed it", 401)), Math.max(0, deadline - this.ctx.now()));
      const onDone = (out: Outcome) => ("node" in out ? cleanup(undefined, out.node) : cleanup(out.error));
      const onAbort = () => cleanup(new ControlError("aborted", "the node went away", 499));
      let cleaned = false;
      const cleanup = (err?: Error, node?: NodeRow) => {
        if (cleaned) return;
        cleaned = true;
        clearTimeout(timeout);
        this.#done.off(id, onDone);
        signal.removeEventListener("abort", onAbort);
        const left = (this.#waiters.get(id) ?? 1) - 1;
        if (left > 0) this.#waiters.set(id, left);
        else {
          this.#waiters.delete(id);
          // Nobody waits any more: the registration expires soon unless its node comes back.
          if (!node) setExpiry(Math.min(deadline, this.ctx.now() + o.registrationIdleMs)).catch(() => {});
        }
        if (err) reject(err);
        else resolve(node!);
      };
      if (signal.aborted) return onAbort();
      this.#done.on(id, onDone);
      signal.addEventListener("abort", onAbort);
      // Completed between the check and the subscription?
      finished().then((n) => n && onDone({ node: n }), () => {});
    });
  }
}
