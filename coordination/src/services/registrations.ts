/**
 * Interactive registrations: a node without an auth key gets an auth URL
 * (`<server>/register/<id>`); a person logs in on that page and confirms; the node's
 * follow-up request, waiting in {@link RegistrationService.wait}, then completes.
 */
import { EventEmitter } from "node:events";
import type { Selectable } from "kysely";
import type { PendingRegistrationsTable } from "../db/schema.js";
import { ControlError, NotFoundError } from "../errors.js";
import { parseJson, type ServiceContext } from "./context.js";
import type { NodeRow, NodeService, RegistrationInput } from "./nodes.js";

/** A pending registration row. */
export type PendingRow = Selectable<PendingRegistrationsTable>;

/** Interactive login bookkeeping. */
export class RegistrationService {
  readonly #done = new EventEmitter();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly nodes: NodeService,
  ) {
    this.#done.setMaxListeners(0);
  }

  /** Starts an interactive registration; returns its id and the URL to show the person. */
  async start(input: RegistrationInput): Promise<{ id: string; authUrl: string }> {
    const now = this.ctx.now();
    // The same machine and node key asking again gets the same link while it is live.
    const live = await this.ctx.db.kysely
      .selectFrom("pending_registrations")
      .select("id")
      .where("machine_key", "=", input.machineKey)
      .where("node_key", "=", input.nodeKey)
      .where("completed_at", "is", null)
      .where("expires_at", ">", now)
      .executeTakeFirst();
    if (live) {
      await this.ctx.db.kysely.updateTable("pending_registrations").set({ request: JSON.stringify(input) }).where("id", "=", live.id).execute();
      return { id: live.id, authUrl: this.authUrl(live.id) };
    }
    const id = this.ctx.random(18).toString("base64url");
    await this.ctx.db.kysely
      .insertInto("pending_registrations")
      .values({
        id,
        machine_key: input.machineKey,
        node_key: input.nodeKey,
        request: JSON.stringify(input),
        created_at: now,
        expires_at: now + this.ctx.options.registrationTimeoutMs,
        user_id: null,
        node_id: null,
        completed_at: null,
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
    this.#done.emit(id, node);
    return node;
  }

  /**
   * Waits until the registration completes (resolves with the node) for the machine that
   * started it; rejects when unknown, expired, for another machine, or when `signal` aborts.
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
    return new Promise<NodeRow>((resolve, reject) => {
      const timeout = setTimeout(() => cleanup(new ControlError("registration_expired", "registration expired before anyone confirmed it", 401)), Math.max(0, pending.expires_at - this.ctx.now()));
      const onDone = (node: NodeRow) => cleanup(undefined, node);
      const onAbort = () => cleanup(new ControlError("aborted", "the node went away", 499));
      const cleanup = (err?: Error, node?: NodeRow) => {
        clearTimeout(timeout);
        this.#done.off(id, onDone);
        signal.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(node!);
      };
      if (signal.aborted) return onAbort();
      this.#done.on(id, onDone);
      signal.addEventListener("abort", onAbort);
      // Completed between the check and the subscription?
      finished().then((n) => n && onDone(n), () => {});
    });
  }
}
