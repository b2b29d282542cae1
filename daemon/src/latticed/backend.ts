/**
 * The local backend (Tailscale's ipnlocal.LocalBackend, cut small): owns the prefs, the
 * keys, the backend state machine of docs/localapi.md, the control loop and the engine,
 * and answers the LocalAPI.
 *
 * States: NoState (before start) → NeedsLogin (no usable node key) → [up] Starting →
 * NeedsLogin + AuthURL (interactive) / NeedsMachineAuth (awaiting approval) → Starting
 * (map stream opening) → Running; down → Stopped. On start with a registered node key,
 * WantRunning and a saved netmap, the engine is configured from the saved netmap at once
 * (Running) and the control loop reconnects behind it.
 *
 * Key expiry: when the self node's KeyExpiry passes (timer) or the server says so
 * (Expired, 401 on the map), every peer is dropped, the state is NeedsLogin and Health
 * says `node key expired; run "lattice up --force-reauth"`; `up --force-reauth` (or any
 * `up` after expiry) makes a new node key and registers again.
 *
 * Ephemeral nodes (lattice-control marks the self Node `Ephemeral: true`, a Lattice
 * extension): `down` and daemon shutdown log out (the server deletes the node at once).
 */
import os from "node:os";
import { ControlError } from "@lattice/control-client";
import { formatKey, type Hostinfo, type MapRequest, type MapResponse, type Node, type RegisterRequest, type RegisterResponse, type UserProfile } from "@lattice/types";
import { x25519PublicKey } from "@lattice/crypto";
import { parseIp, formatIp } from "@lattice/netaddr";
import type { Logger } from "pino";
import { ControlLoop, backoffMs, type ControlDialer, type RefusalAction } from "./control-loop.js";
import type { Engine } from "./engine.js";
import type { HostDns, HostDnsConfig } from "./resolvconf.js";
import { buildDnsStatus, hostDnsConfigOf, type DnsStatus } from "./dns-status.js";
import { LatticedError } from "./errors.js";
import type { MagicConn, NetcheckReport } from "./magic.js";
import { Netmap } from "./netmap.js";
import { defaultPrefs, loadPrefs, parsePrefsPatch, parseUpRequest, prefsForUp, applyPatch, type Prefs } from "./prefs.js";
import { STATE_FILES, type StateDir } from "./state.js";
import { buildStatus, regionCode, stripPrefix, type BackendState, type Status } from "./status.js";
import { routeSelection, routingPrefsChanged, type RouteManager } from "./route-manager.js";
import { applyExitChoice, exitNodeHealth, suggestExitNode, type ExitNodeSuggestion } from "./routes.js";

/** The control protocol capability version latticed speaks. */
export const CAPABILITY_VERSION = 100;
/** Logout's RegisterRequest.Expiry: a time in the past (Tailscale sends Unix 123). */
export const LOGOUT_EXPIRY = new Date(123_000).toISOString();
/** How long `up` waits for the first login answer before replying. */
export const UP_WAIT_MS = 5_000;
const PERSIST_FILE = "persist.json";

/** docs/localapi.md UpResponse. */
export interface UpResponse {
  BackendState: BackendState;
  AuthURL: string;
}

/** docs/localapi.md PingResult. */
export interface PingResult {
  IP: string;
  NodeIP: string;
  NodeName: string;
  Err?: string;
  LatencySeconds: number;
  Endpoint: string;
  DERPRegionID: number;
  DERPRegionCode: string;
  IsLocalIP?: boolean;
}

/** docs/localapi.md WhoIsResponse. */
export interface WhoIsResponse {
  Node: Node;
  UserProfile: UserProfile;
  CapMap: Record<string, never>;
}

/** latticed's SSH service as the backend drives it (ssh.ts SshService). */
export interface SshHook {
  /** Listening + port-22 diversion on `addrs` when `on`, else stopped. */
  apply(on: boolean, addrs: readonly string[]): Promise<void>;
  /** Public host keys for Hostinfo.sshHostKeys. */
  hostKeys(): string[];
  /** The netmap's SSHPolicy or peers changed: re-check live connections. */
  policyChanged(): void;
  close(): Promise<void>;
}

/** Dependencies of {@link LocalBackend}. */
export interface BackendDeps {
  state: StateDir;
  engine: Pick<Engine, "configure" | "clearPeers" | "pingIcmp" | "peerCounters" | "filterCounters" | "edgeStats" | "port">;
  magic: Pick<MagicConn, "endpoints" | "homeDerp" | "peerPath" | "ping" | "netcheck" | "stats" | "hasDisco">;
  dial: ControlDialer;
  log: Logger;
  version: string;
  now: () => number;
  wallNow: () => number;
  random: (n: number) => Uint8Array;
  rnd: () => number;
  hostname: () => string;
  /** Whether a TUN device backs the engine (Status.TUN). */
  tun: boolean;
  /** The embedded SSH server (RunSSH); absent: RunSSH is stored but nothing listens. */
  ssh?: SshHook;
  /** Host resolver configuration for `--accept-dns` (CorpDNS); absent = the host is never touched. */
  hostDns?: HostDns;
  /** The host's own nameservers MagicDNS forwards to (for dns-status). */
  hostUpstreams?: readonly string[];
  /** Host routing for subnet routes and exit nodes (route-manager.ts); absent = the host's routes are never touched. */
  routes?: Pick<RouteManager, "apply" | "down" | "health">;
}

function keyHex(k: Uint8Array): string {
  return Buffer.from(k).toString("hex");
}

/** The local backend (see the file comment). */
export class LocalBackend {
  #state: BackendState = "NoState";
  #authURL = "";
  #prefs: Prefs = defaultPrefs();
  #loggedIn = false;
  #machineKey!: Uint8Array;
  #discoKey!: Uint8Array;
  #nodeKey: Uint8Array | null = null;
  #netmap: Netmap | null = null;
  #hostDnsApplied: HostDnsConfig | null = null;
  #control: ControlLoop | null = null;
  #controlHealth: string | null = null;
  #loginHealth: string | null = null;
  #keyExpired = false;
  #expiryTimer: NodeJS.Timeout | null = null;
  #saveTimer: NodeJS.Timeout | null = null;
  /** Engine configuration runs one at a time, in order. */
  #engineChain: Promise<void> = Promise.resolve();
  #loginGen = 0;
  #stateWaiters: Array<() => void> = [];
  #closed = false;

  constructor(private readonly d: BackendDeps) {}

  /** The backend state. */
  get state(): BackendState {
    return this.#state;
  }

  /** The current netmap (tests, status). */
  get netmap(): Netmap | null {
    return this.#netmap;
  }

  #setState(s: BackendState): void {
    if (s === this.#state) return;
    this.d.log.info({ from: this.#state, to: s }, "backend state");
    this.#state = s;
    for (const w of this.#stateWaiters.splice(0)) w();
  }

  /** Resolves when `pred` holds after a state change, or after `ms`. */
  #waitFor(pred: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      const check = (): void => {
        if (pred()) {
          clearTimeout(t);
          resolve();
        } else this.#stateWaiters.push(check);
      };
      check();
    });
  }

  /** Loads keys, prefs and the saved netmap; starts from them (see the file comment). */
  async start(): Promise<void> {
    const st = this.d.state;
    this.#machineKey = st.loadOrCreateKey(STATE_FILES.machineKey);
    this.#discoKey = st.loadOrCreateKey(STATE_FILES.discoKey);
    this.#nodeKey = st.readKey(STATE_FILES.nodeKey);
    this.#prefs = loadPrefs(st.readJson(STATE_FILES.prefs));
    const persist = st.readJson<{ LoggedIn?: boolean }>(PERSIST_FILE);
    this.#loggedIn = persist?.LoggedIn === true && this.#nodeKey !== null && this.#prefs.ControlURL !== "";
    if (this.#loggedIn) {
      try {
        this.#netmap = Netmap.fromJson(st.readJson(STATE_FILES.netmap));
      } catch (e) {
        this.d.log.warn({ err: (e as Error).message }, "saved netmap unreadable; waiting for a fresh one");
      }
      if (this.#netmap && this.#netmap.self.Key !== formatKey("node", x25519PublicKey(this.#nodeKey!))) this.#netmap = null;
    }
    if (!this.#loggedIn) {
      this.#setState("NeedsLogin");
      return;
    }
    if (!this.#prefs.WantRunning) {
      this.#setState("Stopped");
      return;
    }
    if (this.#netmap && this.#netmap.selfExpired(this.d.wallNow())) {
      this.#expire("saved netmap says the node key expired");
      return;
    }
    if (this.#netmap) {
      this.#setState("Running");
      this.#controlHealth = "not connected to the control server yet (running on the saved network map)";
      this.#configureEngine();
      this.#armExpiry();
    } else this.#setState("Starting");
    this.#ensureControl().start();
  }

  // ───────────────────────────── control ─────────────────────────────

  #ensureControl(): ControlLoop {
    if (this.#control && this.#control.serverUrl === this.#prefs.ControlURL) return this.#control;
    void this.#control?.stop();
    this.#control = new ControlLoop(
      {
        dial: this.d.dial,
        rnd: this.d.rnd,
        log: this.d.log,
        mapRequest: () => this.#mapRequest(),
        onMap: (r, full) => this.#onMap(r, full),
        onDisconnected: (e) => {
          if (this.#controlHealth === null) this.d.log.warn({ err: e.message }, "lost the control server");
          this.#controlHealth ??= `not connected to the control server (since ${new Date(this.d.wallNow()).toISOString()}): ${e.message}`;
        },
        onRefused: (e) => this.#onRefused(e),
      },
      this.#prefs.ControlURL,
      this.#machineKey,
    );
    return this.#control;
  }

  #hostinfo(): Hostinfo {
    const hi: Hostinfo = {
      IPNVersion: this.d.version,
      OS: "linux",
      OSVersion: os.release(),
      Hostname: this.#prefs.Hostname || this.d.hostname(),
      GoArch: process.arch,
      NetInfo: { PreferredDERP: this.d.magic.homeDerp() },
    };
    if (this.#prefs.AdvertiseTags.length > 0) hi.RequestTags = [...this.#prefs.AdvertiseTags];
    if (this.#prefs.AdvertiseRoutes.length > 0) hi.RoutableIPs = [...this.#prefs.AdvertiseRoutes];
    if (this.#prefs.RunSSH && this.d.ssh) {
      const keys = this.d.ssh.hostKeys();
      if (keys.length > 0) hi.sshHostKeys = keys;
    }
    return hi;
  }

  #mapRequest(): MapRequest {
    return {
      Version: CAPABILITY_VERSION,
      NodeKey: formatKey("node", x25519PublicKey(this.#nodeKey!)),
      DiscoKey: formatKey("disco", x25519PublicKey(this.#discoKey)),
      Hostinfo: this.#hostinfo(),
      Endpoints: this.d.magic.endpoints(),
    };
  }

  /** Our endpoints or home DERP changed: tell control (magicsock's onEndpoints/onHomeDerp). */
  endpointsChanged(): void {
    this.#control?.sendUpdate();
  }

  #onMap(resp: MapResponse, full: boolean): void {
    if (this.#closed || !this.#prefs.WantRunning) return;
    const wall = this.d.wallNow();
    if (full) {
      const nm = Netmap.fromFull(resp, wall);
      if (!nm) return;
      this.#netmap = nm;
    }
    let ch = { self: true, peers: true, filter: true, derpMap: true, ssh: true, dns: true };
    if (!full) {
      if (!this.#netmap) return;
      ch = this.#netmap.apply(resp, wall);
    }
    this.#controlHealth = null;
    const nm = this.#netmap;
    if (!nm) return;
    this.#prefs.Ephemeral = (nm.self as Node & { Ephemeral?: boolean }).Ephemeral === true;
    if (nm.selfExpired(wall)) {
      this.#expire("the control server says the node key expired");
      return;
    }
    this.#keyExpired = false;
    this.#authURL = "";
    const wasRunning = this.#state === "Running";
    this.#setState("Running");
    const relevant = ch.self || ch.peers || ch.filter || ch.derpMap || ch.dns;
    if (relevant || !wasRunning) this.#configureEngine();
    if (ch.peers || ch.ssh || ch.self) this.d.ssh?.policyChanged();
    if (ch.self) this.#armExpiry();
    // What a restart needs (peers, keys, filter) is saved at once; presence-only deltas
    // (Online, LastSeen) at most every 5 s.
    this.#scheduleSave(relevant ? 0 : 5_000);
  }

  #onRefused(e: ControlError): RefusalAction {
    this.d.log.warn({ status: e.status, code: e.code, err: e.message }, "control refused the map request");
    if (e.status === 403 && e.code === "machine_not_authorized") {
      this.#setState("NeedsMachineAuth");
      return "retry";
    }
    if (e.status === 401) {
      this.#expire(`control: ${e.message}`);
      return "stop";
    }
    this.#loggedOut(`the control server no longer knows this node (${e.message}); run "lattice up"`);
    return "stop";
  }

  #configureEngine(): void {
    const nm = this.#netmap;
    const key = this.#nodeKey;
    if (!nm || !key) return;
    this.#engineChain = this.#engineChain
      .then(() => (this.#state === "Running" ? this.d.engine.configure(nm, key, routeSelection(this.#prefs)) : undefined))
      .catch((e: Error) => this.d.log.error({ err: e.message }, "configuring the data path failed"))
      .then(() => (this.#state === "Running" && !this.#closed ? this.d.routes?.apply(nm, this.#prefs) : undefined))
      .catch((e: Error) => this.d.log.error({ err: e.message }, "configuring routes failed"))
      .then(() => {
        if (this.#state === "Running" && !this.#closed) this.#setHostDns(hostDnsConfigOf(nm, this.#prefs.CorpDNS));
      });
    this.#syncSsh();
  }

  /** Brings the SSH service in line with RunSSH and the state (after the engine's configuration, in order). */
  #syncSsh(): void {
    const ssh = this.d.ssh;
    if (!ssh) return;
    this.#engineChain = this.#engineChain
      .then(() => {
        const on = this.#prefs.RunSSH && this.#prefs.WantRunning && this.#state === "Running" && !this.#closed;
        return ssh.apply(on, on ? (this.#netmap?.self.Addresses ?? []) : []);
      })
      .catch((e: Error) => this.d.log.error({ err: e.message }, "starting/stopping the SSH server failed"));
  }

  /** Applies `cfg` to the host resolver (null = restore) and remembers it for dns-status. */
  #setHostDns(cfg: HostDnsConfig | null): void {
    if (!this.d.hostDns) return;
    this.d.hostDns.set(cfg);
    this.#hostDnsApplied = cfg;
  }

  /** GET /dns-status (dns-status.ts). */
  dnsStatus(): DnsStatus {
    const h = this.d.hostDns;
    return buildDnsStatus({ netmap: this.#netmap, host: h ? { mode: h.mode, file: h.file } : null, applied: this.#hostDnsApplied, hostUpstreams: this.d.hostUpstreams ?? [] });
  }

  /** Peers out of the engine and the host resolver restored (down, expiry, logout). */
  #clearPeers(): void {
    this.d.engine.clearPeers();
    this.#setHostDns(null);
    const routes = this.d.routes;
    if (routes) this.#engineChain = this.#engineChain.then(() => routes.down()).catch((e: Error) => this.d.log.error({ err: e.message }, "removing routes failed"));
  }

  #armExpiry(): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = null;
    const exp = this.#netmap?.self.KeyExpiry;
    if (!exp) return;
    const t = Date.parse(exp);
    if (!Number.isFinite(t)) return;
    // setTimeout's limit is ~24.8 days: re-arm until then.
    const wait = Math.min(t - this.d.wallNow() + 50, 2 ** 31 - 1);
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = null;
      if (this.#netmap?.selfExpired(this.d.wallNow())) this.#expire("node key expiry time passed");
      else this.#armExpiry();
    }, Math.max(0, wait));
    this.#expiryTimer.unref();
  }

  #expire(why: string): void {
    this.d.log.warn({ why }, "node key expired: dropping all peers");
    this.#keyExpired = true;
    this.#netmap?.peers.clear();
    this.#clearPeers();
    this.d.ssh?.policyChanged();
    this.#syncSsh();
    void this.#control?.stop();
    this.#setState("NeedsLogin");
    this.#scheduleSave(0);
  }

  #loggedOut(health: string | null): void {
    this.#loginGen++;
    this.#loggedIn = false;
    this.#loginHealth = health;
    this.#netmap = null;
    this.#authURL = "";
    this.#clearPeers();
    this.d.ssh?.policyChanged();
    void this.#control?.stop();
    this.d.state.writeJson(PERSIST_FILE, { LoggedIn: false });
    this.d.state.remove(STATE_FILES.netmap);
    this.#setState("NeedsLogin");
    this.#syncSsh();
  }

  #scheduleSave(ms: number): void {
    if (this.#saveTimer && ms > 0) return;
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null;
      try {
        if (this.#netmap) this.d.state.writeJson(STATE_FILES.netmap, this.#netmap.toJson());
      } catch (e) {
        this.d.log.error({ err: (e as Error).message }, "saving the netmap failed");
      }
    }, ms);
    this.#saveTimer.unref();
  }

  #savePrefs(): void {
    this.d.state.writeJson(STATE_FILES.prefs, this.#prefs);
  }

  // ───────────────────────────── login ─────────────────────────────

  /**
   * Registers (auth key or interactive, following the AuthURL until the login completes).
   * Runs in the background of `up`; failures become Health lines and state NeedsLogin.
   */
  async #login(authKey: string | undefined, newKey: boolean): Promise<void> {
    const gen = ++this.#loginGen;
    const control = this.#ensureControl();
    await control.stop();
    if (newKey || this.#nodeKey === null) {
      this.#nodeKey = this.d.random(32);
      this.d.state.writeKey(STATE_FILES.nodeKey, this.#nodeKey);
      this.#loggedIn = false;
      this.d.state.writeJson(PERSIST_FILE, { LoggedIn: false });
      this.#netmap = null;
      this.d.state.remove(STATE_FILES.netmap);
      this.#clearPeers();
    }
    this.#authURL = "";
    this.#loginHealth = null;
    this.#setState("Starting");
    const base: RegisterRequest = { Version: CAPABILITY_VERSION, NodeKey: formatKey("node", x25519PublicKey(this.#nodeKey)), Hostinfo: this.#hostinfo() };
    let req: RegisterRequest = authKey ? { ...base, Auth: { AuthKey: authKey } } : base;
    let attempt = 0;
    for (;;) {
      if (gen !== this.#loginGen || this.#closed) return;
      let resp: RegisterResponse;
      try {
        resp = await control.register(req);
      } catch (e) {
        if (gen !== this.#loginGen) return;
        const ce = e instanceof ControlError ? e : new ControlError(0, "error", String(e));
        if (ce.status === 0 && req.Followup) {
          // Waiting for the person to log in; the connection dropped: ask again.
          await new Promise((r) => setTimeout(r, backoffMs(attempt++, this.d.rnd())));
          continue;
        }
        this.#loginHealth = `login failed: ${ce.message}`;
        this.#authURL = "";
        this.d.log.warn({ code: ce.code, err: ce.message }, "login failed");
        this.#setState("NeedsLogin");
        throw new LatticedError("control_error", `login failed: ${ce.message} (${ce.code})`);
      }
      if (gen !== this.#loginGen) return;
      if (resp.Error) {
        this.#loginHealth = `login failed: ${resp.Error}`;
        this.#setState("NeedsLogin");
        throw new LatticedError("control_error", `login failed: ${resp.Error}`);
      }
      if (resp.AuthURL) {
        this.#authURL = resp.AuthURL;
        this.d.log.info({ url: resp.AuthURL }, "to authenticate, visit the AuthURL");
        this.#setState("NeedsLogin");
        for (const w of this.#stateWaiters.splice(0)) w();
        req = { ...base, Followup: resp.AuthURL };
        continue;
      }
      this.#authURL = "";
      this.#loggedIn = true;
      this.#keyExpired = false;
      this.d.state.writeJson(PERSIST_FILE, { LoggedIn: true });
      this.#setState(resp.MachineAuthorized ? "Starting" : "NeedsMachineAuth");
      if (this.#prefs.WantRunning) control.start();
      return;
    }
  }

  // ───────────────────────────── LocalAPI ─────────────────────────────

  /** GET /prefs. */
  prefs(): Prefs {
    return { ...this.#prefs, AdvertiseTags: [...this.#prefs.AdvertiseTags], AdvertiseRoutes: [...this.#prefs.AdvertiseRoutes] };
  }

  /** Resolves the exit node fields given in a PATCH/up body into `next` (routes.ts applyExitChoice). */
  #exitChoice(next: Prefs, given: { ExitNodeID?: string; ExitNodeIP?: string }): void {
    applyExitChoice(next, given, this.#netmap?.self ?? null, this.#netmap?.peers.values() ?? []);
  }

  /** GET /suggest-exit-node: throws LatticedError `no_exit_nodes` (404) when no online peer offers one. */
  suggestExitNode(): ExitNodeSuggestion {
    const nm = this.#netmap;
    const s = nm ? suggestExitNode(nm.peers.values(), this.d.magic.homeDerp(), (p) => (this.d.magic.peerPath(new Uint8Array(Buffer.from(p.Key.slice(8), "hex")))?.curAddr ?? "") !== "") : null;
    if (!s) throw new LatticedError("no_exit_nodes", "no online peer offers an exit node");
    return s;
  }

  /** PATCH /prefs: only the given fields change; WantRunning starts/stops like up/down. */
  async patchPrefs(body: unknown): Promise<Prefs> {
    const patch = parsePrefsPatch(body);
    const before = this.#prefs;
    const next = applyPatch(before, patch);
    this.#exitChoice(next, patch);
    this.#prefs = next;
    this.#savePrefs();
    if (patch.WantRunning === false && before.WantRunning) await this.down();
    else if (patch.WantRunning === true && !before.WantRunning) await this.up({});
    else {
      if (patch.Hostname !== undefined || patch.AdvertiseTags !== undefined || patch.AdvertiseRoutes !== undefined || (patch.RunSSH !== undefined && patch.RunSSH !== before.RunSSH)) this.#control?.sendUpdate();
      if (patch.RunSSH !== undefined && patch.RunSSH !== before.RunSSH) this.#syncSsh();
    }
    if (((patch.CorpDNS !== undefined && patch.CorpDNS !== before.CorpDNS) || routingPrefsChanged(before, this.#prefs)) && this.#state === "Running") this.#configureEngine();
    // Answer once the data path, routes and host DNS are in place (as Tailscale's EditPrefs):
    // `lattice set --exit-node=E && curl …` must not leave directly.
    await this.#engineChain;
    return this.prefs();
  }

  /** POST /up (docs/localapi.md): answers after the first login round trip or {@link UP_WAIT_MS}. */
  async up(body: unknown): Promise<UpResponse> {
    const req = parseUpRequest(body);
    const next = prefsForUp(this.#prefs, req);
    this.#exitChoice(next, req);
    if (next.ControlURL === "") throw new LatticedError("bad_request", 'ControlURL: required on the first "up" (no control server known yet)');
    const urlChanged = next.ControlURL !== this.#prefs.ControlURL;
    const sshChanged = next.RunSSH !== this.#prefs.RunSSH;
    const hostChanged = sshChanged || next.Hostname !== this.#prefs.Hostname || next.AdvertiseTags.join() !== this.#prefs.AdvertiseTags.join() || next.AdvertiseRoutes.join() !== this.#prefs.AdvertiseRoutes.join();
    const engineChanged = next.CorpDNS !== this.#prefs.CorpDNS || routingPrefsChanged(this.#prefs, next);
    this.#prefs = next;
    this.#savePrefs();
    const needLogin = !this.#loggedIn || this.#nodeKey === null || this.#keyExpired || req.ForceReauth === true || urlChanged;
    if (needLogin) {
      const task = this.#login(req.AuthKey, req.ForceReauth === true || this.#keyExpired || urlChanged);
      task.catch(() => {});
      const waited = await Promise.race([
        task.then(
          () => null,
          (e: unknown) => e,
        ),
        this.#waitFor(() => this.#authURL !== "" || this.#state === "NeedsMachineAuth", UP_WAIT_MS).then(() => "wait" as const),
      ]);
      if (waited instanceof Error) throw waited;
    } else {
      if (this.#state === "Stopped" || this.#state === "NoState") {
        if (this.#netmap && !this.#netmap.selfExpired(this.d.wallNow())) {
          this.#setState("Running");
          this.#configureEngine();
        } else this.#setState("Starting");
      }
      this.#ensureControl().start();
      if (hostChanged) this.#control?.sendUpdate();
      if (sshChanged) this.#syncSsh();
      if (engineChanged && this.#state === "Running") this.#configureEngine();
      await this.#engineChain;
    }
    return { BackendState: this.#state, AuthURL: this.#authURL };
  }

  /** POST /down: WantRunning=false, peers torn down (TUN kept); an ephemeral node logs out. */
  async down(): Promise<void> {
    this.#prefs.WantRunning = false;
    this.#savePrefs();
    if (this.#prefs.Ephemeral && this.#loggedIn) {
      await this.logout(3_000).catch((e: Error) => this.d.log.warn({ err: e.message }, "ephemeral logout on down failed"));
      return;
    }
    this.#loginGen++;
    await this.#control?.stop();
    this.#clearPeers();
    if (this.#loggedIn) this.#setState("Stopped");
    this.#syncSsh();
    // `down` answers once table 52, the rules and the chains are gone.
    await this.#engineChain;
  }

  /**
   * POST /logout: expires the node key at control (RegisterRequest with Expiry in the
   * past), then forgets it: NeedsLogin, WantRunning=false. Throws `control_error` when the
   * server could not be told (nothing changes then) — except that a node that was never
   * logged in just goes to NeedsLogin.
   */
  async logout(timeoutMs = 10_000): Promise<void> {
    if (this.#loggedIn && this.#nodeKey && this.#prefs.ControlURL) {
      const control = this.#ensureControl();
      const req: RegisterRequest = { Version: CAPABILITY_VERSION, NodeKey: formatKey("node", x25519PublicKey(this.#nodeKey)), Expiry: LOGOUT_EXPIRY, Hostinfo: this.#hostinfo() };
      // The server ends this node's map stream when the key expires; the loop would then
      // close the connection under the logout's answer. Stop it first (a fresh connection).
      const wasRunning = control.running;
      await control.stop();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          control.register(req),
          new Promise((_, rej) => (timer = setTimeout(() => rej(new LatticedError("timeout", `the control server did not answer the logout within ${timeoutMs} ms`)), timeoutMs))),
        ]);
      } catch (e) {
        if (wasRunning && !this.#closed) control.start();
        if (e instanceof LatticedError) throw e;
        throw new LatticedError("control_error", `logout failed: ${(e as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
    this.#prefs.WantRunning = false;
    this.#savePrefs();
    this.#nodeKey = null;
    this.d.state.remove(STATE_FILES.nodeKey);
    this.#keyExpired = false;
    this.#loggedOut(null);
  }

  /** The Health lines. */
  health(): string[] {
    const h: string[] = [];
    if (this.#keyExpired) h.push('node key expired; run "lattice up --force-reauth"');
    if (this.#loginHealth) h.push(this.#loginHealth);
    if (this.#state === "NeedsMachineAuth") h.push("this node is waiting for an administrator's approval (lattice-control nodes approve)");
    if (this.#controlHealth && this.#prefs.WantRunning && this.#loggedIn) h.push(this.#controlHealth);
    if (this.#state === "Running" && this.#netmap?.derpMap && Object.keys(this.#netmap.derpMap.Regions).length > 0 && this.d.magic.homeDerp() === 0) h.push("no DERP home region");
    if (this.#state === "Running" && this.d.routes) h.push(...this.d.routes.health(this.#prefs));
    const exitHealth = this.#state === "Running" && this.#netmap ? exitNodeHealth(this.#prefs.ExitNodeID, this.#netmap.peers.values()) : null;
    if (exitHealth) h.push(exitHealth);
    return h;
  }

  /** GET /status. */
  status(includePeers: boolean): Status {
    return buildStatus({
      version: this.d.version,
      backendState: this.#state,
      authURL: this.#authURL,
      haveNodeKey: this.#nodeKey !== null,
      tun: this.d.tun,
      health: this.health(),
      netmap: this.#netmap,
      selfEndpoints: this.d.magic.endpoints(),
      selfHomeDerp: this.d.magic.homeDerp(),
      counters: this.#state === "Running" ? this.d.engine.peerCounters() : new Map(),
      path: (hex) => this.d.magic.peerPath(new Uint8Array(Buffer.from(hex, "hex"))),
      now: this.d.now(),
      wallNow: this.d.wallNow(),
      includePeers,
      dnsMode: this.dnsStatus().Mode,
      exitNodeId: this.#prefs.ExitNodeID,
    });
  }

  #nodeByIp(ip: string): Node | undefined {
    const nm = this.#netmap;
    if (!nm) return undefined;
    const has = (n: Node) => n.Addresses.some((a) => stripPrefix(a) === ip);
    if (has(nm.self)) return nm.self;
    for (const p of nm.peers.values()) if (has(p)) return p;
    return undefined;
  }

  /** GET /ping (docs/localapi.md PingResult; a failed ping is a 200 with Err). */
  async ping(ipText: string, type: "disco" | "TSMP" | "ICMP", timeoutMs: number): Promise<PingResult> {
    const ip = parseIp(ipText);
    if (!ip) throw new LatticedError("bad_request", `ip: not an IP address (got ${JSON.stringify(ipText)})`);
    const canon = formatIp(ip.bytes);
    if (this.#state !== "Running" || !this.#netmap) throw new LatticedError("no_netmap", `not running (state ${this.#state})`);
    const node = this.#nodeByIp(canon);
    if (!node) throw new LatticedError("peer_not_found", `no peer has the address ${canon}`);
    const res: PingResult = { IP: canon, NodeIP: stripPrefix(node.Addresses[0] ?? canon), NodeName: node.Name.split(".")[0] ?? "", LatencySeconds: 0, Endpoint: "", DERPRegionID: 0, DERPRegionCode: "" };
    if (node === this.#netmap.self) return { ...res, IsLocalIP: true };
    try {
      // Without disco (a MagicConn reporting hasDisco=false) a disco ping is answered with ICMP.
      if (type === "disco" && this.d.magic.hasDisco !== false) {
        const r = await this.d.magic.ping(new Uint8Array(Buffer.from(node.Key.slice(8), "hex")), timeoutMs);
        res.LatencySeconds = r.latencyMs / 1000;
        res.Endpoint = r.endpoint;
        res.DERPRegionID = r.derpRegionId;
        res.DERPRegionCode = regionCode(this.#netmap?.derpMap ?? null, r.derpRegionId);
      } else {
        res.LatencySeconds = (await this.d.engine.pingIcmp(canon, timeoutMs)) / 1000;
        const path = this.d.magic.peerPath(new Uint8Array(Buffer.from(node.Key.slice(8), "hex")));
        if (path) {
          res.Endpoint = path.curAddr;
          if (!path.curAddr && path.derpRegionId > 0) {
            res.DERPRegionID = path.derpRegionId;
            res.DERPRegionCode = regionCode(this.#netmap?.derpMap ?? null, path.derpRegionId);
          }
        }
      }
    } catch (e) {
      res.Err = (e as Error).message;
    }
    return res;
  }

  /** GET /netcheck. */
  netcheck(): Promise<NetcheckReport> {
    return this.d.magic.netcheck();
  }

  /** GET /whois: `addr` is IP, IP:port, [IPv6]:port or nodekey:hex. Throws bad_request / peer_not_found. */
  whois(addr: string): WhoIsResponse {
    let node: Node | undefined;
    if (addr.startsWith("nodekey:")) {
      if (!/^nodekey:[0-9a-f]{64}$/.test(addr)) throw new LatticedError("bad_request", `addr: a node key is "nodekey:" + 64 hex digits (got ${JSON.stringify(addr.slice(0, 80))})`);
      node = this.#netmap?.self.Key === addr ? this.#netmap.self : this.#netmap?.peerByKey(addr);
    } else {
      let host = addr;
      const m = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(addr);
      if (m) host = m[1]!;
      else if (/^[0-9.]+:\d{1,5}$/.test(addr)) host = addr.slice(0, addr.lastIndexOf(":"));
      const ip = parseIp(host);
      if (!ip) throw new LatticedError("bad_request", `addr: not IP, IP:port or nodekey:hex (got ${JSON.stringify(addr.slice(0, 80))})`);
      node = this.#nodeByIp(formatIp(ip.bytes));
    }
    if (!node) throw new LatticedError("peer_not_found", `no node in the network map has ${addr.slice(0, 80)}`);
    const profile = this.#netmap?.userProfiles.get(node.User) ?? { ID: node.User, LoginName: "", DisplayName: "" };
    return { Node: node, UserProfile: profile, CapMap: {} };
  }

  /** GET /bugreport: logs a state dump under a marker and returns the marker. */
  bugreport(note: string): string {
    const self = this.#nodeKey ? keyHex(x25519PublicKey(this.#nodeKey)).slice(0, 8) : "nokey";
    const t = new Date(this.d.wallNow()).toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
    const marker = `BUG-${self}-${t}-${keyHex(this.d.random(8))}`;
    this.d.log.info({ marker, note: note.slice(0, 1024), status: this.status(true), prefs: this.#prefs, edge: this.d.engine.edgeStats, filter: this.d.engine.filterCounters(), magicsock: this.d.magic.stats() }, "bugreport");
    return marker;
  }

  /** Shutdown: an ephemeral node logs out first (bounded by `logoutMs`), then the control loop stops. */
  async shutdown(logoutMs = 3_000): Promise<void> {
    if (this.#closed) return;
    if (this.#prefs.Ephemeral && this.#loggedIn) {
      const wantRunning = this.#prefs.WantRunning;
      await this.logout(logoutMs).catch((e: Error) => this.d.log.warn({ err: e.message }, "ephemeral logout at shutdown failed"));
      // An ephemeral node's prefs keep WantRunning so a restarted daemon logs in again when told to.
      this.#prefs.WantRunning = wantRunning;
    }
    this.#closed = true;
    this.#loginGen++;
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    if (this.#saveTimer) {
      clearTimeout(this.#saveTimer);
      this.#saveTimer = null;
      if (this.#netmap && this.#loggedIn) this.d.state.writeJson(STATE_FILES.netmap, this.#netmap.toJson());
    }
    await this.#control?.stop();
    await this.#engineChain;
    await this.d.ssh?.close().catch(() => undefined);
    this.#setHostDns(null);
    await this.d.routes?.down().catch((e: Error) => this.d.log.error({ err: e.message }, "removing routes failed"));
  }

  /**
   * GET `path` over the control connection's Noise channel (SSH check mode long polls).
   * Throws LatticedError `no_netmap` when not logged in.
   */
  controlGet(path: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
    const c = this.#control;
    if (!c || !this.#loggedIn) return Promise.reject(new LatticedError("no_netmap", "not connected to a control server"));
    return c.get(path, signal);
  }
}
