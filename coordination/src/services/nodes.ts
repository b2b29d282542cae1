/**
 * Nodes: registration (auth key or completed interactive login), re-authentication and
 * key rotation, approval, expiry, tags, rename, delete, online state, and the periodic
 * sweep (ephemeral cleanup, key-expiry announcements). Every change is published on the bus.
 */
import { isIP } from "node:net";
import type { Transaction } from "kysely";
import type { Database, NodeRow } from "../db/schema.js";
import { isUniqueViolation } from "../db/open.js";
import { ConflictError, ControlError, NotFoundError, ValidationError } from "../errors.js";
import { autoApprovedFor } from "./route-approval.js";
import { parseJson, type ServiceContext } from "./context.js";
import { allocateIPv4, highestIPv4, ipv6For } from "./addresses.js";
import { sanitizeHostname, uniqueName, validateGivenName } from "./names.js";
import { checkTagOwnership, normalizeTags } from "./tags.js";
import { peerHostinfo } from "../mapper/peer-hostinfo.js";
import { roleOf } from "./users.js";
import { TAILNET_DOMAIN_KEY } from "./settings.js";
import type { AuthKeyService } from "./authkeys.js";
import type { PolicyHealth, PolicyService } from "./policy.js";

/** Settings key of the IPv4 address handed out last (see allocateIPv4). */
const IPV4_CURSOR = "ipv4_last_allocated";

export type { NodeRow } from "../db/schema.js";

/** What a node presents when it registers. */
export interface RegistrationInput {
  machineKey: string;
  nodeKey: string;
  /** The node key being replaced (key rotation), if any. */
  oldNodeKey?: string | undefined;
  discoKey?: string | undefined;
  hostname: string;
  hostinfo?: Record<string, unknown> | undefined;
  /** Tags the node asks for (Hostinfo.RequestTags); used for interactive logins. */
  requestTags?: string[] | undefined;
  /** The node asks to be ephemeral (interactive logins). */
  ephemeral?: boolean | undefined;
}

/** Who the node will belong to, resolved from an auth key or a logged-in person. */
export interface Ownership {
  userId: number | null;
  tags: string[];
  approved: boolean;
  ephemeral: boolean;
  authKeyId: number | null;
}

/** A node as the admin API shows it. */
export interface NodeView {
  id: number;
  name: string;
  hostname: string;
  user: string | null;
  tags: string[];
  ipv4: string;
  ipv6: string;
  machineKey: string;
  nodeKey: string;
  approved: boolean;
  ephemeral: boolean;
  online: boolean;
  lastSeen: string | null;
  keyExpiry: string | null;
  expiryDisabled: boolean;
  expired: boolean;
  /** Routes the node advertises (Hostinfo.RoutableIPs). */
  advertisedRoutes: string[];
  /** Routes an admin approved (autoApprovers in the policy approve more at compile time). */
  approvedRoutes: string[];
  createdAt: string;
  /**
   * Why this node gets no packet filter and no peers right now: the stored policy failed to
   * compile (see PolicyService.health); null normally and for nodes awaiting approval.
   */
  policyError: string | null;
}

/** Validates an IP prefix ("10.0.0.0/24", "fd00::/64"); IPv4 host bits must be zero. */
/** The two default routes that make a node an exit node (always approved together). */
const EXIT_ROUTES = ["0.0.0.0/0", "::/0"];

/** How {@link NodeService.approveRoutes} changes the approved set. */
export type RouteApprovalMode = "add" | "remove" | "replace";

export function normalizePrefix(p: string, field: string): string {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(p.trim());
  const bits = m ? Number(m[2]) : -1;
  const ip = m ? m[1]! : "";
  const v4 = isIP(ip) === 4;
  const v6 = isIP(ip) === 6;
  if (!m || (!v4 && !v6) || bits > (v4 ? 32 : 128)) throw new ValidationError(`${field}: ${JSON.stringify(p)} is not an IP prefix (e.g. 10.0.0.0/24)`);
  // IPv4: the address must be the network address (no host bits set).
  const net = v4 ? ipv4Network(ip, bits) : ip;
  if (v4 && net !== ip) throw new ValidationError(`${field}: ${JSON.stringify(p)} has host bits set (did you mean ${net}/${bits}?)`);
  return `${ip.toLowerCase()}/${bits}`;
}

function ipv4Network(ip: string, bits: number): string {
  const n = ip.split(".").reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const v = (n & mask) >>> 0;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
}

function policyError(h: PolicyHealth): string | null {
  return h.ok ? null : `${h.code}: ${h.message}`;
}

/** Effective key expiry of a node (null = never). */
export function effectiveExpiry(n: Pick<NodeRow, "key_expiry" | "expiry_disabled">): number | null {
  return n.expiry_disabled ? null : n.key_expiry;
}

/** True when the node's key has expired at `now`. */
export function isExpired(n: Pick<NodeRow, "key_expiry" | "expiry_disabled">, now: number): boolean {
  const e = effectiveExpiry(n);
  return e != null && e <= now;
}

/** Node management. */
export class NodeService {
  #lastSweep: number;
  #registering: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly authKeys: AuthKeyService,
    private readonly policies: PolicyService,
  ) {
    this.#lastSweep = ctx.now();
  }

  /** Renders a row for the admin API. */
  async view(n: NodeRow): Promise<NodeView> {
    const user = n.user_id != null ? await this.ctx.db.kysely.selectFrom("users").select("name").where("id", "=", n.user_id).executeTakeFirst() : undefined;
    return this.viewWith(n, user?.name ?? null);
  }

  private viewWith(n: NodeRow, userName: string | null): NodeView {
    const exp = effectiveExpiry(n);
    return {
      id: n.id,
      name: n.given_name,
      hostname: n.hostname,
      user: userName,
      tags: parseJson<string[]>(n.tags, []),
      ipv4: n.ipv4,
      ipv6: n.ipv6,
      machineKey: n.machine_key,
      nodeKey: n.node_key,
      approved: !!n.approved,
      ephemeral: !!n.ephemeral,
      online: !!n.online,
      lastSeen: n.last_seen != null ? new Date(n.last_seen).toISOString() : null,
      keyExpiry: exp != null ? new Date(exp).toISOString() : null,
      expiryDisabled: !!n.expiry_disabled,
      expired: isExpired(n, this.ctx.now()),
      advertisedRoutes: parseJson<{ RoutableIPs?: string[] }>(n.hostinfo, {}).RoutableIPs ?? [],
      approvedRoutes: parseJson<string[]>(n.approved_routes, []),
      createdAt: new Date(n.created_at).toISOString(),
      policyError: n.approved ? policyError(this.policies.health()) : null,
    };
  }

  /** Every node, by id. */
  async list(): Promise<NodeView[]> {
    const rows = await this.ctx.db.kysely
      .selectFrom("nodes")
      .leftJoin("users", "users.id", "nodes.user_id")
      .selectAll("nodes")
      .select("users.name as user_name")
      .orderBy("nodes.id")
      .execute();
    return rows.map((r) => this.viewWith(r, r.user_name ?? null));
  }

  /** All node rows (for building the netmap snapshot). */
  async rows(ids?: number[]): Promise<NodeRow[]> {
    let q = this.ctx.db.kysely.selectFrom("nodes").selectAll();
    if (ids) {
      if (ids.length === 0) return [];
      q = q.where("id", "in", ids);
    }
    return q.orderBy("id").execute();
  }

  /**
   * Finds a node by id, MagicDNS short name, FQDN (`name.<tailnet domain>`, with or without
   * the final dot), or node key; throws NotFoundError.
   */
  async get(ref: string): Promise<NodeRow> {
    let short = ref;
    if (ref.includes(".")) {
      const domain = (await this.ctx.db.kysely.selectFrom("settings").select("value").where("key", "=", TAILNET_DOMAIN_KEY).executeTakeFirst())?.value ?? this.ctx.options.tailnetDomain;
      const bare = ref.replace(/\.$/, "").toLowerCase();
      if (bare.endsWith(`.${domain.toLowerCase()}`)) short = bare.slice(0, -(domain.length + 1));
    }
    const row = await this.ctx.db.kysely
      .selectFrom("nodes")
      .selectAll()
      .where((eb) => {
        const ors = [eb("given_name", "=", short), eb("node_key", "=", ref)];
        if (/^\d+$/.test(ref) && ref.length < 15) ors.push(eb("id", "=", Number(ref)));
        return eb.or(ors);
      })
      .executeTakeFirst();
    if (!row) throw new NotFoundError("node", ref);
    return row;
  }

  /** The node registered for a machine key, if any. */
  async byMachineKey(machineKey: string): Promise<NodeRow | undefined> {
    return this.ctx.db.kysely.selectFrom("nodes").selectAll().where("machine_key", "=", machineKey).executeTakeFirst();
  }

  /** Registers (or re-authenticates) a machine with an auth key, in one transaction. */
  async registerWithAuthKey(input: RegistrationInput, authKey: string): Promise<NodeRow> {
    return this.withRetry(async (tx) => {
      const key = await this.authKeys.consume(tx, authKey);
      const tags = parseJson<string[]>(key.tags, []);
      const own: Ownership = {
        userId: tags.length > 0 ? null : key.user_id,
        tags,
        approved: !!key.preapproved,
        ephemeral: !!key.ephemeral,
        authKeyId: key.id,
      };
      return this.upsert(tx, input, own);
    });
  }

  /**
   * Registers a machine for a person who logged in on the web page (interactive login).
   * Requested tags need the person to be a tag owner; then the node is tagged, not owned.
   */
  async registerForUser(input: RegistrationInput, userId: number): Promise<NodeRow> {
    const user = await this.ctx.db.kysely.selectFrom("users").selectAll().where("id", "=", userId).executeTakeFirst();
    if (!user) throw new NotFoundError("user", String(userId));
    const tags = normalizeTags(input.requestTags ?? [], "RequestTags");
    if (tags.length > 0) {
      const { policy } = await this.policies.current();
      checkTagOwnership(policy, tags, { admin: false, user: { ...user, role: roleOf(user) } });
    }
    return this.withRetry((tx) =>
      this.upsert(tx, input, { userId: tags.length ? null : userId, tags, approved: true, ephemeral: !!input.ephemeral, authKeyId: null }),
    );
  }

  private async withRetry(fn: (tx: Transaction<Database>) => Promise<{ row: NodeRow; added: boolean }>): Promise<NodeRow> {
    // Registrations in this process run one at a time (address and name allocation read
    // then write); the retry covers other writers sharing a PostgreSQL database.
    const prev = this.#registering;
    let release!: () => void;
    this.#registering = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await this.registerTx(fn);
    } finally {
      release();
    }
  }

  /** Stores the routes `row` advertises that the current policy auto-approves; the new row, or null when none. */
  private async autoApprove(row: NodeRow): Promise<NodeRow | null> {
    if (!parseJson<{ RoutableIPs?: unknown[] }>(row.hostinfo, {}).RoutableIPs?.length) return null;
    const users = await this.ctx.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
    const next = autoApprovedFor((await this.policies.current()).policy, users, row);
    if (next === null) return null;
    return this.ctx.db.kysely.updateTable("nodes").set({ approved_routes: next, updated_at: this.ctx.now() }).where("id", "=", row.id).returningAll().executeTakeFirstOrThrow();
  }

  private async registerTx(fn: (tx: Transaction<Database>) => Promise<{ row: NodeRow; added: boolean }>): Promise<NodeRow> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.ctx.db.kysely.transaction().execute(fn);
        // Routes advertised at registration that the policy auto-approves: approved now.
        const approvedNow = await this.autoApprove(res.row);
        if (approvedNow) res.row = approvedNow;
        this.ctx.bus.publish(res.added ? { nodesAdded: [res.row.id] } : { nodesChanged: [res.row.id] });
        return res.row;
      } catch (e) {
        // Two registrations raced for the same address or name: try again with fresh state.
        if (isUniqueViolation(e) && attempt < 5 && /ipv4|ipv6|given_name/.test(String((e as Error).message))) continue;
        if (isUniqueViolation(e)) throw new ConflictError("node_conflict", `registration conflicts with an existing node: ${(e as Error).message}`);
        throw e;
      }
    }
  }

  private async upsert(tx: Transaction<Database>, input: RegistrationInput, own: Ownership): Promise<{ row: NodeRow; added: boolean }> {
    const now = this.ctx.now();
    const keyExpiry = own.tags.length > 0 ? null : now + this.ctx.options.nodeKeyExpiryMs;
    const clash = await tx.selectFrom("nodes").select(["id", "machine_key"]).where("node_key", "=", input.nodeKey).executeTakeFirst();
    if (clash && clash.machine_key !== input.machineKey) {
      throw new ConflictError("node_key_in_use", "node key is already registered to another machine");
    }
    const existing = await tx.selectFrom("nodes").selectAll().where("machine_key", "=", input.machineKey).executeTakeFirst();
    const hostinfo = JSON.stringify(input.hostinfo ?? {});
    if (existing) {
      // Re-authentication: rotate the node key, renew expiry, take the new ownership.
      const row = await tx
        .updateTable("nodes")
        .set({
          node_key: input.nodeKey,
          disco_key: input.discoKey ?? existing.disco_key,
          hostname: input.hostname,
          hostinfo,
          user_id: own.userId,
          tags: JSON.stringify(own.tags),
          approved: existing.approved || own.approved ? 1 : 0,
          key_expiry: keyExpiry,
          ephemeral: own.ephemeral ? 1 : 0,
          auth_key_id: own.authKeyId,
          updated_at: now,
        })
        .where("id", "=", existing.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return { row, added: false };
    }
    const used = await tx.selectFrom("nodes").select(["ipv4", "given_name"]).execute();
    // Hand addresses out in one direction from the last one (kept in settings; the highest
    // in use for databases from before), so a deleted node's address is not reused soon.
    const last = await tx.selectFrom("settings").select("value").where("key", "=", IPV4_CURSOR).executeTakeFirst();
    const ipv4 = allocateIPv4(new Set(used.map((u) => u.ipv4)), last?.value ?? highestIPv4(used.map((u) => u.ipv4)));
    await tx
      .insertInto("settings")
      .values({ key: IPV4_CURSOR, value: ipv4 })
      .onConflict((oc) => oc.column("key").doUpdateSet({ value: ipv4 }))
      .execute();
    const name = uniqueName(sanitizeHostname(input.hostname), new Set(used.map((u) => u.given_name)));
    const row = await tx
      .insertInto("nodes")
      .values({
        machine_key: input.machineKey,
        node_key: input.nodeKey,
        disco_key: input.discoKey ?? "",
        hostname: input.hostname,
        given_name: name,
        user_id: own.userId,
        tags: JSON.stringify(own.tags),
        ipv4,
        ipv6: ipv6For(ipv4),
        hostinfo,
        endpoints: "[]",
        home_derp: 0,
        approved_routes: "[]",
        approved: own.approved ? 1 : 0,
        key_expiry: keyExpiry,
        expiry_disabled: 0,
        ephemeral: own.ephemeral ? 1 : 0,
        auth_key_id: own.authKeyId,
        last_seen: null,
        online: 0,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { row, added: true };
  }

  /** Updates one node and publishes it as changed (and as disconnected when `disconnect`). */
  private async update(ref: string, set: Partial<Omit<NodeRow, "id">>, disconnect = false): Promise<NodeView> {
    const node = await this.get(ref);
    const row = await this.ctx.db.kysely
      .updateTable("nodes")
      .set({ ...set, updated_at: this.ctx.now() })
      .where("id", "=", node.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    this.ctx.bus.publish(disconnect ? { nodesChanged: [row.id], disconnect: [row.id] } : { nodesChanged: [row.id] });
    return this.view(row);
  }

  /**
   * Key rotation without re-authentication: the machine presents its current node key as
   * `oldNodeKey` and a new one; the node keeps owner, tags, addresses and expiry.
   */
  async rotateKey(machineKey: string, oldNodeKey: string, newNodeKey: string): Promise<NodeRow> {
    const node = await this.byMachineKey(machineKey);
    if (!node || node.node_key !== oldNodeKey) throw new NotFoundError("node", oldNodeKey);
    if (isExpired(node, this.ctx.now())) throw new ControlError("node_key_expired", "node key has expired; re-authenticate", 401);
    try {
      const row = await this.ctx.db.kysely
        .updateTable("nodes")
        .set({ node_key: newNodeKey, updated_at: this.ctx.now() })
        .where("id", "=", node.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      this.ctx.bus.publish({ nodesChanged: [node.id] });
      return row;
    } catch (e) {
      if (isUniqueViolation(e)) throw new ConflictError("node_key_in_use", "node key is already registered to another machine");
      throw e;
    }
  }

  /** Approves a node waiting for device approval. */
  async approve(ref: string): Promise<NodeView> {
    return this.update(ref, { approved: 1 });
  }

  /** Expires a node's key now (it must re-authenticate). */
  async expire(ref: string): Promise<NodeView> {
    return this.update(ref, { key_expiry: this.ctx.now(), expiry_disabled: 0 }, true);
  }

  /** Logout from the node itself: expires the node key of this machine. */
  async logout(machineKey: string, nodeKey: string): Promise<void> {
    const node = await this.byMachineKey(machineKey);
    if (!node || node.node_key !== nodeKey) throw new NotFoundError("node", nodeKey);
    if (node.ephemeral) {
      await this.delete(String(node.id));
      return;
    }
    await this.expire(String(node.id));
  }

  /**
   * True when `nodeKey` ("nodekey:<64 hex>") is the key of a current node of this tailnet:
   * approved and not expired (a deleted node has no row). Used for DERP admission
   * (the embedded relay and `POST /derp/admit`).
   */
  async isCurrentNodeKey(nodeKey: string): Promise<boolean> {
    const n = await this.ctx.db.kysely.selectFrom("nodes").selectAll().where("node_key", "=", nodeKey).executeTakeFirst();
    return n !== undefined && !!n.approved && !isExpired(n, this.ctx.now());
  }

  /** Turns key expiry off for a node (admin "disable key expiry"). */
  async disableExpiry(ref: string): Promise<NodeView> {
    return this.update(ref, { expiry_disabled: 1 });
  }

  /**
   * Turns key expiry back on (admin "enable key expiry"). A node whose key expiry was never
   * set (tagged nodes) gets one a full node key lifetime from now, as on re-authentication.
   */
  async enableExpiry(ref: string): Promise<NodeView> {
    const node = await this.get(ref);
    const keyExpiry = node.key_expiry ?? this.ctx.now() + this.ctx.options.nodeKeyExpiryMs;
    return this.update(ref, { expiry_disabled: 0, key_expiry: keyExpiry }, keyExpiry <= this.ctx.now());
  }

  /** Sets a node's tags (admin; each tag must be declared in tagOwners). The node becomes tagged. */
  async setTags(ref: string, tagsIn: string[]): Promise<NodeView> {
    const tags = normalizeTags(tagsIn);
    const node = await this.get(ref);
    if (tags.length === 0) {
      if (node.user_id == null) throw new ValidationError("tags: a tagged node without an owner cannot drop all its tags (a node is either tagged or owned by a user)");
      return this.update(ref, { tags: "[]" });
    }
    const { policy } = await this.policies.current();
    checkTagOwnership(policy, tags, { admin: true });
    return this.update(ref, { tags: JSON.stringify(tags), user_id: null, key_expiry: null });
  }

  /**
   * Changes the routes an admin approves for a subnet router / exit node (IPv4/IPv6
   * prefixes). `mode`: "add" to the approved set, "remove" from it, or "replace" it
   * (the HTTP API's default, for compatibility). Routes to add must be advertised by the
   * node (Hostinfo.RoutableIPs): approval is not pre-approval. Exit routes go as a pair,
   * as in Tailscale's "use as exit node": 0.0.0.0/0 or ::/0 approves (removes) both; a
   * node advertising only one of them cannot be approved as an exit node.
   * Throws ValidationError naming `routes[i]` and the value.
   */
  async approveRoutes(ref: string, routes: string[], mode: RouteApprovalMode = "replace"): Promise<NodeView> {
    const node = await this.get(ref);
    const norm = routes.map((r, i) => normalizePrefix(r, `routes[${i}]`));
    const advertised = new Set(
      (parseJson<{ RoutableIPs?: unknown }>(node.hostinfo, {}).RoutableIPs as string[] | undefined ?? []).flatMap((r) => {
        try {
          return [normalizePrefix(String(r), "advertised")];
        } catch {
          return [];
        }
      }),
    );
    const given = new Set<string>();
    norm.forEach((r, i) => {
      for (const x of EXIT_ROUTES.includes(r) ? EXIT_ROUTES : [r]) {
        if (mode !== "remove" && !advertised.has(x)) {
          const what = EXIT_ROUTES.includes(r) ? `${x} (exit routes go as a pair: 0.0.0.0/0 and ::/0)` : x;
          throw new ValidationError(
            `routes[${i}]: ${JSON.stringify(routes[i])}: ${node.given_name} does not advertise ${what}; advertised: ${[...advertised].sort().join(", ") || "none"}`,
          );
        }
        given.add(x);
      }
    });
    const current = new Set(parseJson<string[]>(node.approved_routes, []));
    let next: Set<string>;
    if (mode === "replace") next = given;
    else if (mode === "add") next = new Set([...current, ...given]);
    else next = new Set([...current].filter((r) => !given.has(r)));
    return this.update(ref, { approved_routes: JSON.stringify([...next].sort()) });
  }

  /** Renames a node (its MagicDNS name); the name must be a free DNS label. */
  async rename(ref: string, name: string): Promise<NodeView> {
    validateGivenName(name);
    try {
      return await this.update(ref, { given_name: name });
    } catch (e) {
      if (isUniqueViolation(e)) throw new ConflictError("name_taken", `name ${JSON.stringify(name)} is already used by another node`);
      throw e;
    }
  }

  /** Deletes a node. */
  async delete(ref: string): Promise<void> {
    const node = await this.get(ref);
    await this.ctx.db.kysely.deleteFrom("nodes").where("id", "=", node.id).execute();
    this.ctx.bus.publish({ nodesRemoved: [node.id], disconnect: [node.id] });
  }

  /**
   * Persists what a map request reported; returns whether anything differed. Publishes
   * `nodesChanged` when the part of Hostinfo netmaps carry (mapper/peer-hostinfo.ts) or
   * the advertised routes differ, else `endpointsChanged` when the endpoints, disco key or
   * home DERP do; a change elsewhere in Hostinfo (NetInfo, versions …) is stored for the
   * server but not announced.
   */
  async updateFromNode(
    nodeId: number,
    upd: { discoKey?: string | undefined; endpoints?: string[] | undefined; hostinfo?: Record<string, unknown> | undefined; homeDerp?: number | undefined },
  ): Promise<boolean> {
    const node = (await this.rows([nodeId]))[0];
    if (!node) throw new NotFoundError("node", String(nodeId));
    const set: Partial<NodeRow> = {};
    if (upd.discoKey !== undefined && upd.discoKey !== node.disco_key) set.disco_key = upd.discoKey;
    if (upd.endpoints !== undefined) {
      const e = JSON.stringify(upd.endpoints);
      if (e !== node.endpoints) set.endpoints = e;
    }
    if (upd.homeDerp !== undefined && upd.homeDerp !== node.home_derp) set.home_derp = upd.homeDerp;
    let announceHostinfo = false;
    if (upd.hostinfo !== undefined) {
      const h = JSON.stringify(upd.hostinfo);
      if (h !== node.hostinfo) {
        set.hostinfo = h;
        const prev = parseJson<Record<string, unknown>>(node.hostinfo, {});
        const routesChanged = JSON.stringify(upd.hostinfo.RoutableIPs ?? []) !== JSON.stringify(prev.RoutableIPs ?? []);
        announceHostinfo = routesChanged || JSON.stringify(peerHostinfo(upd.hostinfo)) !== JSON.stringify(peerHostinfo(prev));
        if (routesChanged) {
          // Newly advertised routes the policy auto-approves are approved now (and stay).
          const users = await this.ctx.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
          const next = autoApprovedFor((await this.policies.current()).policy, users, node, h);
          if (next !== null) set.approved_routes = next;
        }
      }
    }
    if (Object.keys(set).length === 0) return false;
    await this.ctx.db.kysely.updateTable("nodes").set({ ...set, updated_at: this.ctx.now() }).where("id", "=", nodeId).execute();
    const endpoints = set.disco_key !== undefined || set.endpoints !== undefined || set.home_derp !== undefined;
    if (announceHostinfo) this.ctx.bus.publish({ nodesChanged: [nodeId] });
    else if (endpoints) this.ctx.bus.publish({ endpointsChanged: [nodeId] });
    return true;
  }

  /** Records a node going online or offline (LastSeen = now). */
  async setOnline(nodeId: number, online: boolean): Promise<void> {
    const now = this.ctx.now();
    await this.ctx.db.kysely.updateTable("nodes").set({ online: online ? 1 : 0, last_seen: now }).where("id", "=", nodeId).execute();
    this.ctx.bus.publish({ online: new Map([[nodeId, online]]) });
  }

  /**
   * At startup no stream is open: every node is offline. Nodes that were online when the
   * server stopped were seen until now, so their ephemeral timeout starts now.
   */
  async markAllOffline(): Promise<void> {
    await this.ctx.db.kysely.updateTable("nodes").set({ online: 0, last_seen: this.ctx.now() }).where("online", "=", 1).execute();
  }

  /**
   * Periodic housekeeping: deletes ephemeral nodes offline for longer than the timeout,
   * and announces node keys that expired since the previous sweep.
   */
  async sweep(): Promise<{ deleted: number[]; expired: number[] }> {
    const now = this.ctx.now();
    const db = this.ctx.db.kysely;
    const cutoff = now - this.ctx.options.ephemeralTimeoutMs;
    const stale = await db
      .selectFrom("nodes")
      .select(["id", "last_seen", "created_at"])
      .where("ephemeral", "=", 1)
      .where("online", "=", 0)
      .execute();
    const deleted = stale.filter((n) => (n.last_seen ?? n.created_at) < cutoff).map((n) => n.id);
    if (deleted.length > 0) {
      await db.deleteFrom("nodes").where("id", "in", deleted).where("online", "=", 0).execute();
      this.ctx.bus.publish({ nodesRemoved: deleted, disconnect: deleted });
    }
    const expiredRows = await db
      .selectFrom("nodes")
      .select("id")
      .where("expiry_disabled", "=", 0)
      .where("key_expiry", ">", this.#lastSweep)
      .where("key_expiry", "<=", now)
      .execute();
    const expired = expiredRows.map((r) => r.id);
    if (expired.length > 0) this.ctx.bus.publish({ nodesChanged: expired, disconnect: expired });
    await db.deleteFrom("pending_registrations").where("expires_at", "<", now).execute();
    await db.deleteFrom("web_sessions").where("expires_at", "<", now).execute();
    this.#lastSweep = now;
    return { deleted, expired };
  }

  /** Refuses nodes whose key expired or that are unapproved (for map authorization). */
  assertUsable(n: NodeRow): void {
    if (isExpired(n, this.ctx.now())) throw new ControlError("node_key_expired", "node key has expired; re-authenticate", 401);
    if (!n.approved) throw new ControlError("machine_not_authorized", "machine is waiting for admin approval", 403);
  }
}
