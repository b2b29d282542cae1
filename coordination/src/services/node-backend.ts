/**
 * The {@link NodeBackend} the node API (coordination/src/nodeapi) runs on: registration
 * with auth keys or interactive login, map authorization, node updates, online state,
 * and the in-memory netmap snapshot kept current from the change bus.
 *
 * Ordering: internal change sets are applied in order by one worker, in batches (whatever
 * accumulated while the previous batch was applied): reload the rows concerned,
 * recompile the policy at most once when peer sets may change, bump the version, swap the
 * snapshot, and only then publish one merged change set. Mutating methods wait for the
 * worker so their effect is in the next `netmapState()`.
 *
 * A recompile is diffed against the previous compilation (policy-diff.ts): the change set
 * names only the nodes whose compiled view changed (`policyChangedFor`), so a join
 * re-diffs the sessions of the nodes that can see it, not every session. The first
 * compilation publishes `policyChanged`. A failed compile fails closed (see #recompile).
 */
import type {
  DERPMap,
  DNSConfig,
  MachineKeyString,
  NodeID,
  NodeKeyString,
  RegisterRequest,
  RegisterResponse,
} from "@lattice/types";
import type { CompiledPolicy, Policy, Topology } from "@lattice/policy";
import type { Selectable } from "kysely";
import type { Control } from "../app.js";
import type { ChangeSet as BusChange } from "../changes/bus.js";
import type { UsersTable } from "../db/schema.js";
import { ControlError, PolicyCompileError } from "../errors.js";
import {
  NodeBackendError,
  type ChangeSet,
  type MapAuthorization,
  type NetmapState,
  type NodeBackend,
  type NodeUpdate,
  type RequestOrigin,
} from "../nodeapi/backend.js";
import { buildState, compileFor, FAIL_CLOSED, TAGGED_DEVICES_USER_ID, type NodeCache, type ViewCache } from "./netmap-state.js";
import { changedNodes, idsOf } from "./policy-diff.js";
import { isExpired, type NodeRow, type RegistrationInput } from "./nodes.js";
import { topologyFrom } from "./topology.js";

/** Options of {@link ControlNodeBackend}. */
export interface NodeBackendOptions {
  derpMap?: DERPMap;
  /** Extra DNS settings merged into the generated MagicDNS config. */
  dnsConfig?: DNSConfig;
  onError?: (e: unknown) => void;
  /**
   * Compile node joins/changes incrementally (`IncrementalCompiler`, @lattice/policy):
   * only what depends on the changed nodes is recomputed and diffed. Default true; false
   * recompiles the whole policy and diffs every node on each change.
   */
  incrementalCompile?: boolean;
  /**
   * Replaces the compiler (tests inject a failing one to prove the fail-closed path).
   * Default: the current policy's IncrementalCompiler (PolicyService.current).
   */
  compile?: (policy: Policy, topology: Topology) => { compiled: CompiledPolicy; touched: number[] | null };
}

function toBackendError(e: unknown): unknown {
  if (e instanceof NodeBackendError) return e;
  if (e instanceof ControlError) {
    const status = e.status === 410 ? 401 : e.status;
    return new NodeBackendError(status, e.code, e.message);
  }
  return e;
}

/** The control plane's implementation of the node API's backend seam. */
export class ControlNodeBackend implements NodeBackend {
  #state!: NetmapState;
  #version = 0;
  /** Bus changes not yet applied, and the worker applying them (null when idle). */
  #pending: BusChange[] = [];
  #running: Promise<void> | null = null;
  #rows = new Map<NodeID, NodeRow>();
  #users: Selectable<UsersTable>[] = [];
  #policy!: Policy;
  #compiled: CompiledPolicy = { names: [], ids: [], nodes: [], baseAllowed: [] };
  /** NodeID of each topology index of `#compiled`; null before the first compile. */
  #compiledIds: Int32Array | null = null;
  /** The compiler `#compiled` came from (its `touched` reports are relative to its own previous result). */
  #compiler: unknown = null;
  readonly #views: ViewCache = {};
  #domain = "";
  readonly #cache: NodeCache = new Map();
  readonly #listeners = new Set<(c: ChangeSet) => void>();
  readonly #streams = new Map<NodeID, number>();
  #unsubscribe: () => void = () => {};

  private constructor(
    private readonly c: Control,
    private readonly opts: NodeBackendOptions,
  ) {}

  /** Loads the initial snapshot and starts following the change bus. */
  static async create(c: Control, opts: NodeBackendOptions = {}): Promise<ControlNodeBackend> {
    const b = new ControlNodeBackend(c, opts);
    await b.#reloadAll();
    b.#unsubscribe = c.bus.subscribe((ch) => {
      b.#pending.push(ch);
      b.#running ??= b.#drain();
    });
    return b;
  }

  /** Stops following the bus. */
  close(): void {
    this.#unsubscribe();
  }

  /** Resolves once every change published so far is in the snapshot. */
  settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  async #reloadAll(): Promise<void> {
    const rows = await this.c.nodes.rows();
    this.#rows = new Map(rows.map((r) => [r.id, r]));
    this.#users = await this.c.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
    this.#domain = await this.c.settings.tailnetDomain();
    await this.#recompile();
    this.#rebuild();
  }

  /**
   * Recompiles the policy; returns the nodes whose compiled view changed, or null when
   * every node must re-check its view (the first compilation).
   *
   * Never runs the policy's `tests` (they are checked when the policy is saved), so a data
   * change cannot make the compile fail. Should it fail anyway, the tailnet fails closed:
   * the compilation becomes empty (every node: empty packet filter, no peers), the failure
   * goes to `onError` and to `PolicyService.health()` (shown by `nodes list` and `/health`),
   * and the next change compiles again. Output is matched to nodes by id, never by name.
   */
  async #recompile(): Promise<NodeID[] | null> {
    // Users are few; reload them so new owners are known to the compiler.
    this.#users = await this.c.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
    const cur = await this.c.policies.current();
    this.#policy = cur.policy;
    const rows = [...this.#rows.values()];
    let next: CompiledPolicy;
    let touched: number[] | null = null;
    try {
      const topology = topologyFrom(this.#users, rows);
      if (this.opts.compile) {
        const r = this.opts.compile(cur.policy, topology);
        next = r.compiled;
        touched = r.touched;
      } else if (this.opts.incrementalCompile === false) {
        next = compileFor({ users: this.#users, rows, policy: this.#policy, serverUrl: this.c.ctx.options.serverUrl });
      } else {
        const r = cur.compiler.compile(topology);
        next = r.compiled;
        // `touched` is relative to the compiler's previous result: only ours when it is the same compiler.
        touched = this.#compiler === cur.compiler ? r.touched : null;
        this.#compiler = cur.compiler;
      }
      this.c.policies.reportCompile(cur.version);
    } catch (e) {
      const failed = new PolicyCompileError(cur.version, e);
      const before = this.c.policies.health();
      this.c.policies.reportCompile(cur.version, failed.message);
      if (before.ok || before.message !== failed.message) this.opts.onError?.(failed);
      next = FAIL_CLOSED;
      touched = null;
      this.#compiler = null;
    }
    const nextIds = idsOf(next);
    const prevIds = this.#compiledIds;
    const changed = prevIds ? changedNodes({ compiled: this.#compiled, idOf: prevIds }, { compiled: next, idOf: nextIds }, touched ?? undefined) : null;
    this.#compiled = next;
    this.#compiledIds = nextIds;
    return changed;
  }

  #rebuild(): void {
    this.#version++;
    const domain = this.#domain;
    this.#state = buildState(
      {
        version: this.#version,
        domain,
        derpMap: this.opts.derpMap ?? { Regions: {} },
        dnsConfig: { Resolvers: [], Domains: [domain], Proxied: true, ...(this.opts.dnsConfig ?? {}) },
        users: this.#users,
        rows: [...this.#rows.values()],
        policy: this.#policy,
        serverUrl: this.c.ctx.options.serverUrl,
        now: this.c.ctx.now(),
      },
      this.#compiled,
      this.#cache,
      this.#views,
    );
  }

  async #reloadRows(ids: number[]): Promise<void> {
    const rows = await this.c.nodes.rows(ids);
    const found = new Set(rows.map((r) => r.id));
    for (const r of rows) this.#rows.set(r.id, r);
    for (const id of ids) if (!found.has(id)) this.#rows.delete(id);
  }

  /** Applies a batch of bus changes: one reload, at most one recompile, one merged change set. */
  async #applyBatch(batch: BusChange[]): Promise<void> {
    const added = new Set<NodeID>();
    const removed = new Set<NodeID>();
    const changed = new Set<NodeID>();
    const endpoints = new Set<NodeID>();
    const disconnect = new Set<NodeID>();
    const online = new Map<NodeID, boolean>();
    let recompile = false;
    let policyChanged = false;
    let policyChangedFor: NodeID[] = [];
    let profiles = false;
    const reload = new Set<NodeID>();
    for (const ch of batch) {
      for (const id of ch.nodeIds) if (ch.kind !== "nodeRemoved") reload.add(id);
    }
    const before = new Map([...reload].map((id) => [id, this.#rows.get(id)]));
    await this.#reloadRows([...reload]);
    const now = this.c.ctx.now();
    for (const ch of batch) {
      const ids = ch.nodeIds;
      switch (ch.kind) {
        case "nodeAdded":
          ids.forEach((id) => added.add(id));
          recompile = true;
          break;
        case "nodeRemoved":
          for (const id of ids) {
            this.#rows.delete(id);
            removed.add(id);
            disconnect.add(id);
          }
          recompile = true;
          break;
        case "nodeChanged": {
          const fields = ch.fields ?? [];
          const endpointOnly = fields.length > 0 && fields.every((f) => f === "endpoints" || f === "homeDerp" || f === "discoKey");
          ids.forEach((id) => (endpointOnly ? endpoints : changed).add(id));
          if (fields.some((f) => f === "tags" || f === "user" || f === "approved" || f === "routes" || f === "name")) recompile = true;
          for (const id of ids) {
            const r = this.#rows.get(id);
            if (r && r.approved && !before.get(id)?.approved) added.add(id);
            if (r && isExpired(r, now)) disconnect.add(id);
          }
          break;
        }
        case "keyExpired":
          ids.forEach((id) => (changed.add(id), disconnect.add(id)));
          break;
        case "onlineChanged":
          ids.forEach((id) => online.set(id, !!ch.online));
          break;
        case "policyChanged":
          recompile = true;
          break;
        case "userChanged":
          recompile = true;
          profiles = true;
          break;
      }
    }
    if (recompile) {
      const changed = await this.#recompile();
      if (changed === null) policyChanged = true;
      else policyChangedFor = changed;
    }
    this.#rebuild();
    const present = (ids: Set<NodeID>) => [...ids].filter((id) => this.#rows.has(id));
    const out: ChangeSet = { version: this.#version };
    const addedList = present(added);
    if (addedList.length) out.nodesAdded = addedList;
    if (removed.size) out.nodesRemoved = [...removed];
    const changedList = present(changed).filter((id) => !added.has(id));
    if (changedList.length) out.nodesChanged = changedList;
    const endpointList = present(endpoints).filter((id) => !added.has(id) && !changed.has(id));
    if (endpointList.length) out.endpointsChanged = endpointList;
    const onlineLive = new Map([...online].filter(([id]) => this.#rows.has(id)));
    if (onlineLive.size) out.online = onlineLive;
    if (policyChanged) out.policyChanged = true;
    else {
      const forList = policyChangedFor.filter((id) => this.#rows.has(id));
      if (forList.length) out.policyChangedFor = forList;
    }
    if (profiles) out.userProfilesChanged = true;
    if (disconnect.size) out.disconnect = [...disconnect];
    for (const l of [...this.#listeners]) {
      try {
        l(out);
      } catch (e) {
        this.opts.onError?.(e);
      }
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0);
        try {
          await this.#applyBatch(batch);
        } catch (e) {
          this.opts.onError?.(e);
        }
      }
    } finally {
      this.#running = null;
    }
  }

  async #response(node: NodeRow | undefined, authUrl = ""): Promise<RegisterResponse> {
    const user = node?.user_id != null ? this.#users.find((u) => u.id === node.user_id) ?? (await this.c.db.kysely.selectFrom("users").selectAll().where("id", "=", node.user_id).executeTakeFirst()) : undefined;
    const tagged = node != null && node.user_id == null;
    const id = user?.id ?? (tagged ? TAGGED_DEVICES_USER_ID : 0);
    const name = user ? user.display_name ?? user.name : tagged ? "Tagged Devices" : "";
    const login = user ? user.email ?? `${user.name}@${this.#domain}` : tagged ? "tagged-devices" : "";
    return {
      User: { ID: id, DisplayName: name },
      Login: { ID: id, Provider: "lattice", LoginName: login, DisplayName: name },
      NodeKeyExpired: node ? isExpired(node, this.c.ctx.now()) : false,
      MachineAuthorized: node ? !!node.approved && !isExpired(node, this.c.ctx.now()) : false,
      AuthURL: authUrl,
      Error: "",
    };
  }

  /** {@inheritDoc NodeBackend.register} */
  async register(machineKey: MachineKeyString, req: RegisterRequest, signal: AbortSignal, origin?: RequestOrigin): Promise<RegisterResponse> {
    try {
      const hostinfo = (req.Hostinfo ?? {}) as Record<string, unknown>;
      const input: RegistrationInput = {
        machineKey,
        nodeKey: req.NodeKey,
        oldNodeKey: req.OldNodeKey || undefined,
        hostname: typeof hostinfo.Hostname === "string" && hostinfo.Hostname ? hostinfo.Hostname : "node",
        hostinfo,
        requestTags: Array.isArray(hostinfo.RequestTags) ? (hostinfo.RequestTags as string[]) : undefined,
        ephemeral: !!req.Ephemeral,
      };
      const now = this.c.ctx.now();
      if (req.Expiry) {
        const t = Date.parse(req.Expiry);
        if (Number.isFinite(t) && t <= now && t > 0) {
          await this.c.nodes.logout(machineKey, req.NodeKey);
          await this.settled();
          const node = await this.c.nodes.byMachineKey(machineKey);
          return { ...(await this.#response(node)), NodeKeyExpired: true, MachineAuthorized: false };
        }
      }
      if (req.Followup) {
        const id = this.c.registrations.idFromUrl(req.Followup);
        if (!id) throw new NodeBackendError(401, "registration_unknown", "unknown follow-up URL");
        const node = await this.c.registrations.wait(id, machineKey, signal);
        await this.settled();
        return this.#response(node);
      }
      if (req.Auth?.AuthKey) {
        const node = await this.c.nodes.registerWithAuthKey(input, req.Auth.AuthKey);
        await this.settled();
        return this.#response(node);
      }
      const existing = await this.c.nodes.byMachineKey(machineKey);
      if (existing && !isExpired(existing, now)) {
        if (existing.node_key === req.NodeKey) return this.#response(existing);
        if (req.OldNodeKey && existing.node_key === req.OldNodeKey) {
          const node = await this.c.nodes.rotateKey(machineKey, req.OldNodeKey, req.NodeKey);
          await this.settled();
          return this.#response(node);
        }
      }
      const { authUrl } = await this.c.registrations.start(input, origin?.source);
      return this.#response(undefined, authUrl);
    } catch (e) {
      throw toBackendError(e);
    }
  }

  /** {@inheritDoc NodeBackend.authorizeMap} */
  async authorizeMap(machineKey: MachineKeyString, nodeKey: NodeKeyString): Promise<MapAuthorization> {
    const node = await this.c.nodes.byMachineKey(machineKey);
    if (!node || node.node_key !== nodeKey) throw new NodeBackendError(404, "node_not_found", "no node is registered with this machine and node key");
    try {
      this.c.nodes.assertUsable(node);
    } catch (e) {
      throw toBackendError(e);
    }
    return { nodeId: node.id };
  }

  /** {@inheritDoc NodeBackend.updateNodeFromMapRequest} */
  async updateNodeFromMapRequest(nodeId: NodeID, update: NodeUpdate): Promise<void> {
    try {
      await this.c.nodes.updateFromNode(nodeId, {
        discoKey: update.discoKey,
        endpoints: update.endpoints,
        hostinfo: update.hostinfo as Record<string, unknown> | undefined,
        homeDerp: update.homeDERP,
      });
      await this.settled();
    } catch (e) {
      throw toBackendError(e);
    }
  }

  /** {@inheritDoc NodeBackend.setOnline} */
  async setOnline(nodeId: NodeID, online: boolean): Promise<void> {
    const n = (this.#streams.get(nodeId) ?? 0) + (online ? 1 : -1);
    if (n <= 0) this.#streams.delete(nodeId);
    else this.#streams.set(nodeId, n);
    if ((online && n === 1) || (!online && n <= 0)) {
      if (!this.#rows.has(nodeId)) return;
      await this.c.nodes.setOnline(nodeId, online).catch((e) => this.opts.onError?.(e));
      await this.settled();
    }
  }

  /** {@inheritDoc NodeBackend.netmapState} */
  netmapState(): NetmapState {
    return this.#state;
  }

  /** {@inheritDoc NodeBackend.subscribe} */
  subscribe(listener: (change: ChangeSet) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
