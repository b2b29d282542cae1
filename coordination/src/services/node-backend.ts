/**
 * The {@link NodeBackend} the node API (coordination/src/nodeapi) runs on: registration
 * with auth keys or interactive login, map authorization, node updates, online state,
 * and the in-memory netmap snapshot kept current from the change bus.
 *
 * One change path: services publish {@link Change}s on the bus; one worker applies them
 * in order, in batches (whatever accumulated while the previous batch was applied):
 * merge them ({@link mergeChanges}), reload the rows concerned through the node service,
 * recompile the policy at most once when what the compiler reads changed, bump the
 * version, swap the snapshot, and only then hand the same change — completed with what
 * only the backend knows (nodes that became visible, must disconnect, or whose compiled
 * view changed: `policyChangedFor`) — to the map streams. Mutating methods wait for the
 * worker so their effect is in the next `netmapState()`.
 *
 * The backend sees the rest of the server only through {@link NodeBackendDeps} (narrow
 * service interfaces; no database handle).
 */
import type { MachineKeyString, NodeID, NodeKeyString, RegisterRequest, RegisterResponse, SSHAction } from "@lattice/types";
import type { ChangeBus } from "../changes/bus.js";
import type { NodeRow, UserRow } from "../db/schema.js";
import { loginName } from "@lattice/policy";
import { ControlError } from "../errors.js";
import { mergeChanges, type Change, type NetmapState, type VersionedChange } from "../mapper/types.js";
import { NodeBackendError, type MapAuthorization, type NodeBackend, type NodeUpdate, type RequestOrigin } from "../nodeapi/backend.js";
import type { ServiceContext, ServiceOptions } from "./context.js";
import { NetmapBuilder, type NetmapBuilderOptions } from "./netmap-builder.js";
import { TAGGED_DEVICES_USER_ID } from "./netmap-state.js";
import { isExpired, type NodeService, type RegistrationInput } from "./nodes.js";
import type { PolicyService } from "./policy.js";
import type { RegistrationService } from "./registrations.js";
import type { DnsService } from "./dns.js";
import type { DnsSettings } from "./dns-settings.js";
import type { SshCheckService } from "./ssh-checks.js";
import type { UserService } from "./users.js";
import { parseJson } from "./context.js";

/**
 * What the backend needs from the rest of the server (the `Control` of app.ts provides
 * it): the change bus to follow, the clock, and narrow service interfaces.
 */
export interface NodeBackendDeps {
  ctx: Pick<ServiceContext, "now"> & { options: Pick<ServiceOptions, "serverUrl"> };
  bus: Pick<ChangeBus, "subscribe">;
  nodes: Pick<NodeService, "rows" | "byMachineKey" | "registerWithAuthKey" | "rotateKey" | "logout" | "updateFromNode" | "setOnline" | "assertUsable">;
  users: Pick<UserService, "rows">;
  policies: Pick<PolicyService, "current" | "health" | "reportCompile">;
  registrations: Pick<RegistrationService, "idFromUrl" | "wait" | "start">;
  dns: Pick<DnsService, "current">;
  sshChecks: Pick<SshCheckService, "action" | "wait">;
}

/** Options of {@link ControlNodeBackend}. */
export interface NodeBackendOptions extends Omit<NetmapBuilderOptions, "serverUrl"> {
  /** Where failures of background work go (a failed policy compile: a PolicyCompileError, once per failure). */
  onError?: (e: unknown) => void;
}

/** The node-protocol status of a refusal: an expired registration link is a bad credential (401). */
function toBackendError(e: unknown): unknown {
  if (e instanceof ControlError && e.status === 410) return new NodeBackendError(401, e.code, e.message);
  return e;
}

/** Whether anything of a row the policy compiler reads (topology.ts) differs. */
function compilerInputChanged(a: NodeRow, b: NodeRow): boolean {
  if (a.approved !== b.approved || a.given_name !== b.given_name || a.hostname !== b.hostname || a.user_id !== b.user_id) return true;
  if (a.tags !== b.tags || a.ipv4 !== b.ipv4 || a.ipv6 !== b.ipv6 || a.approved_routes !== b.approved_routes) return true;
  if (a.hostinfo === b.hostinfo) return false;
  const routes = (r: NodeRow) => JSON.stringify(parseJson<{ RoutableIPs?: unknown }>(r.hostinfo, {})?.RoutableIPs ?? null);
  return routes(a) !== routes(b);
}

/** The control plane's implementation of the node API's backend seam. */
export class ControlNodeBackend implements NodeBackend {
  #state!: NetmapState;
  #version = 0;
  /** Changes not yet applied, and the worker applying them (null when idle). */
  #pending: Change[] = [];
  #running: Promise<void> | null = null;
  #rows = new Map<NodeID, NodeRow>();
  #users: UserRow[] = [];
  #domain = "";
  #dns!: DnsSettings;
  readonly #builder: NetmapBuilder;
  readonly #listeners = new Set<(c: VersionedChange) => void>();
  readonly #streams = new Map<NodeID, number>();
  #unsubscribe: () => void = () => {};

  private constructor(
    private readonly c: NodeBackendDeps,
    private readonly opts: NodeBackendOptions,
  ) {
    this.#builder = new NetmapBuilder({ ...opts, serverUrl: c.ctx.options.serverUrl });
  }

  /** Loads the initial snapshot and starts following the change bus. */
  static async create(c: NodeBackendDeps, opts: NodeBackendOptions = {}): Promise<ControlNodeBackend> {
    const b = new ControlNodeBackend(c, opts);
    const rows = await c.nodes.rows();
    b.#rows = new Map(rows.map((r) => [r.id, r]));
    b.#users = await c.users.rows();
    ({ domain: b.#domain, settings: b.#dns } = await c.dns.current());
    await b.#recompile();
    b.#rebuild();
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

  /**
   * Compiles the current policy for the current rows (NetmapBuilder.compile: never runs
   * the policy's tests; fails closed). Reports the outcome to the policy service (health:
   * `/health`, `nodes list`) and a new failure to `onError`. Returns the nodes whose
   * compiled view changed, or null when every node must re-check (the first compile).
   */
  async #recompile(): Promise<NodeID[] | null> {
    const cur = await this.c.policies.current();
    const started = performance.now();
    const { changed, error } = this.#builder.compile(cur, this.#users, [...this.#rows.values()]);
    const before = this.c.policies.health();
    this.c.policies.reportCompile(cur.version, error?.message, performance.now() - started);
    if (error && (before.ok || before.message !== error.message)) this.opts.onError?.(error);
    return changed;
  }

  #rebuild(): void {
    this.#version++;
    this.#state = this.#builder.snapshot({ version: this.#version, domain: this.#domain, dns: this.#dns, users: this.#users, rows: [...this.#rows.values()], now: this.c.ctx.now() });
  }

  /**
   * Applies a batch of changes: one merged change, one reload of the rows it names, at
   * most one recompile (when the policy, the users, or what the compiler reads of a node
   * changed), one snapshot, one published change.
   */
  async #applyBatch(batch: Change[]): Promise<void> {
    const ch = mergeChanges(batch);
    let renamed = false;
    if (ch.dnsChanged) {
      // New DNS settings. A new tailnet domain renames every node (Node.Name): every node
      // is published as changed (below; its row need not be reloaded), so each stream gets
      // its self node and the peers it shows again.
      const prev = this.#domain;
      ({ domain: this.#domain, settings: this.#dns } = await this.c.dns.current());
      renamed = this.#domain !== prev;
    }
    const removed = new Set(ch.nodesRemoved ?? []);
    const reload = new Set<NodeID>([...(ch.nodesAdded ?? []), ...(ch.nodesChanged ?? []), ...(ch.endpointsChanged ?? []), ...(ch.online?.keys() ?? [])]);
    for (const id of removed) reload.delete(id);
    const before = new Map<NodeID, NodeRow | undefined>([...reload].map((id) => [id, this.#rows.get(id)]));
    const fresh = reload.size > 0 ? await this.c.nodes.rows([...reload]) : [];
    for (const r of fresh) this.#rows.set(r.id, r);
    const found = new Set(fresh.map((r) => r.id));
    for (const id of reload) if (!found.has(id)) (this.#rows.delete(id), removed.add(id));
    for (const id of removed) this.#rows.delete(id);

    const now = this.c.ctx.now();
    const added = new Set(ch.nodesAdded ?? []);
    const disconnect = new Set([...(ch.disconnect ?? []), ...removed]);
    let recompile = !!ch.policyChanged || !!ch.userProfilesChanged || added.size > 0 || removed.size > 0;
    for (const r of fresh) {
      const old = before.get(r.id);
      if (old && !old.approved && r.approved) added.add(r.id);
      if (isExpired(r, now)) disconnect.add(r.id);
      if (!recompile && (!old || compilerInputChanged(old, r))) recompile = true;
    }
    if (ch.userProfilesChanged || fresh.some((r) => r.user_id != null && !this.#users.some((u) => u.id === r.user_id))) {
      this.#users = await this.c.users.rows();
    }
    const policyChangedFor = recompile ? await this.#recompile() : [];
    this.#rebuild();

    const present = (id: NodeID) => this.#rows.has(id);
    const out = mergeChanges([
      { ...ch, nodesAdded: [...added].filter(present), nodesRemoved: [...removed], disconnect: [...disconnect], policyChanged: policyChangedFor === null },
      renamed ? { nodesChanged: [...this.#rows.keys()] } : {},
    ]);
    const version = this.#version;
    const stamped: VersionedChange = {
      ...out,
      version,
      ...(out.nodesChanged ? { nodesChanged: out.nodesChanged.filter(present) } : {}),
      ...(out.endpointsChanged ? { endpointsChanged: out.endpointsChanged.filter(present) } : {}),
      ...(out.online ? { online: new Map([...out.online].filter(([id]) => present(id))) } : {}),
      ...(policyChangedFor?.length ? { policyChangedFor: policyChangedFor.filter(present) } : {}),
    };
    for (const l of [...this.#listeners]) {
      try {
        l(stamped);
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
    if (node?.user_id != null && !this.#users.some((u) => u.id === node.user_id)) this.#users = await this.c.users.rows();
    const user = node?.user_id != null ? this.#users.find((u) => u.id === node.user_id) : undefined;
    const tagged = node != null && node.user_id == null;
    const id = user?.id ?? (tagged ? TAGGED_DEVICES_USER_ID : 0);
    const name = user ? user.display_name ?? user.name : tagged ? "Tagged Devices" : "";
    const login = user ? loginName(user) : tagged ? "tagged-devices" : "";
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

  /** {@inheritDoc NodeBackend.sshAction} */
  async sshAction(machineKey: MachineKeyString, srcId: NodeID, dstId: NodeID, localUser: string): Promise<SSHAction> {
    return this.c.sshChecks.action(await this.c.nodes.byMachineKey(machineKey), srcId, dstId, localUser);
  }

  /** {@inheritDoc NodeBackend.sshCheckWait} */
  async sshCheckWait(machineKey: MachineKeyString, id: string, signal: AbortSignal): Promise<SSHAction> {
    return this.c.sshChecks.wait(await this.c.nodes.byMachineKey(machineKey), id, signal);
  }

  /** {@inheritDoc NodeBackend.subscribe} */
  subscribe(listener: (change: VersionedChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
