/**
 * latticed's SSH service: the embedded SSH server (daemon/src/ssh) wired to the node's
 * netmap and data path while the pref RunSSH is on (`lattice up --ssh`, `set --ssh`).
 *
 * - Identity ({@link NetmapSshBackend}): `whois(srcIp)` is the peer whose Addresses hold
 *   the IP, with its UserProfile (null for tagged nodes). Sound because the connection
 *   arrives only through the port-22 diversion (divert.ts) and the device passes a peer's
 *   packets only when their source lies in that peer's AllowedIPs (cryptokey routing);
 *   our own addresses are never an identity (a local process reaching the internal port).
 * - Policy: the netmap's SSHPolicy; `onPolicyChange` fires on every netmap whose
 *   SSHPolicy or peers changed (and on key expiry / logout), so live sessions are
 *   re-checked and revoked ones closed.
 * - Check mode: `fetchCheck(url)` GETs the URL's path over the control connection's
 *   Noise HTTP/2 channel (the host in the URL is ignored: the only server asked is our
 *   control server) and parses a tailcfg SSHAction.
 * - Host keys: loadHostKeys({stateDir}) — /etc/ssh keys when readable, else generated once
 *   under `<state>/ssh/`; reported as Hostinfo `sshHostKeys` while RunSSH is on.
 * - Listening: on each of our tailnet addresses on one internal port P (random free high
 *   port); the engine's diversion rewrites <tailnet IP>:22 ⇄ :P. An accepted connection
 *   without a diverted SYN is closed.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { Node, SSHAction, SSHPolicy, UserProfile } from "@lattice/types";
import type { Logger } from "pino";
import { loadHostKeys, publicHostKeys, SshServer, type HostKey, type SshBackend } from "../ssh/index.js";
import type { SshDivert } from "./divert.js";
import { LatticedError } from "./errors.js";
import type { Netmap } from "./netmap.js";

/**
 * Concurrent unauthenticated connections per peer address. Deployment tools open many at
 * once (Kamal/SSHKit starts one per thread, 30 and more; sshd's MaxStartups begins
 * dropping at 10 but retries make that work for OpenSSH, not for net-ssh): 64, still far
 * below the server's 1024 total so one flooding peer cannot lock the others out.
 */
export const MAX_UNAUTHENTICATED_PER_PEER = 64;

/** Largest SSHAction body accepted from the check endpoint. */
const MAX_ACTION_BYTES = 64 * 1024;

/** GET over the control channel: status and body text. */
export type ControlGet = (path: string, signal: AbortSignal) => Promise<{ status: number; body: string }>;

function stripPrefix(a: string): string {
  const i = a.indexOf("/");
  return i < 0 ? a : a.slice(0, i);
}

/** The SshBackend over the daemon's netmap (see the file comment). */
export class NetmapSshBackend implements SshBackend {
  readonly #subs = new Set<() => void>();

  constructor(
    private readonly netmap: () => Netmap | null,
    private readonly get: ControlGet,
  ) {}

  whois(srcIp: string): { node: Node; user: UserProfile | null } | undefined {
    const nm = this.netmap();
    if (!nm) return undefined;
    for (const p of nm.peers.values()) {
      if (p.Expired || !p.Addresses.some((a) => stripPrefix(a) === srcIp)) continue;
      const tagged = (p.Tags?.length ?? 0) > 0;
      return { node: p, user: tagged ? null : (nm.userProfiles.get(p.User) ?? null) };
    }
    return undefined;
  }

  self(): { node: Node } | undefined {
    const nm = this.netmap();
    return nm ? { node: nm.self } : undefined;
  }

  sshPolicy(): SSHPolicy | undefined {
    return this.netmap()?.sshPolicy ?? undefined;
  }

  onPolicyChange(cb: () => void): () => void {
    this.#subs.add(cb);
    return () => this.#subs.delete(cb);
  }

  /** Tells the subscribers (live connections are re-checked synchronously). */
  changed(): void {
    for (const cb of [...this.#subs]) cb();
  }

  async fetchCheck(url: string, signal: AbortSignal): Promise<SSHAction> {
    let path: string;
    try {
      const u = new URL(url);
      path = u.pathname + u.search;
    } catch {
      throw new LatticedError("bad_request", `check URL: not a URL (got ${JSON.stringify(url.slice(0, 200))})`);
    }
    const r = await this.get(path, signal);
    if (r.status !== 200) throw new LatticedError("control_error", `check ${path}: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
    if (r.body.length > MAX_ACTION_BYTES) throw new LatticedError("control_error", `check ${path}: answer over ${MAX_ACTION_BYTES} bytes`);
    const a = JSON.parse(r.body) as unknown;
    if (typeof a !== "object" || a === null || Array.isArray(a)) throw new LatticedError("control_error", `check ${path}: answer is not an SSHAction object`);
    return a as SSHAction;
  }
}

/** Dependencies of {@link SshService}. */
export interface SshServiceDeps {
  stateDir: string;
  /** Host key directory (default /etc/ssh). */
  systemKeyDir?: string;
  netmap: () => Netmap | null;
  get: ControlGet;
  divert: SshDivert;
  log: Logger;
  /** A random port in [lo, hi) for P. */
  randomPort: () => number;
}

/** The SSH server's lifecycle in latticed (see the file comment). */
export class SshService {
  readonly backend: NetmapSshBackend;
  #keys: HostKey[] | null = null;
  #server: SshServer | null = null;
  #listeners = new Map<string, Server>();
  #port = 0;

  constructor(private readonly d: SshServiceDeps) {
    this.backend = new NetmapSshBackend(d.netmap, d.get);
  }

  /** The public host keys (loaded or created on first use); [] when they cannot be. */
  hostKeys(): string[] {
    try {
      this.#keys ??= loadHostKeys({ stateDir: this.d.stateDir, ...(this.d.systemKeyDir ? { systemDir: this.d.systemKeyDir } : {}) });
      return publicHostKeys(this.#keys);
    } catch (e) {
      this.d.log.error({ err: (e as Error).message }, "SSH host keys unavailable");
      return [];
    }
  }

  /** The internal port P (0 = not listening). */
  get port(): number {
    return this.#port;
  }

  /** The server (tests, metrics). */
  get server(): SshServer | null {
    return this.#server;
  }

  /**
   * Brings the service to `on` with our tailnet addresses `addrs` ("100.64.0.1/32"):
   * listeners on every address (P chosen on the first), diversion configured; off closes
   * the listeners and live connections and turns the diversion off.
   */
  async apply(on: boolean, addrs: readonly string[]): Promise<void> {
    if (!on || addrs.length === 0) {
      this.d.divert.configure([], 0);
      await this.#closeListeners([...this.#listeners.keys()]);
      if (!on && this.#server) {
        const s = this.#server;
        this.#server = null;
        this.#port = 0;
        await s.close().catch(() => undefined);
        this.d.log.info({}, "SSH server stopped");
      }
      return;
    }
    if (!this.#server) {
      this.hostKeys();
      if (!this.#keys) return;
      this.#server = new SshServer({ backend: this.backend, hostKeys: this.#keys, maxUnauthenticatedPerSource: MAX_UNAUTHENTICATED_PER_PEER, log: ({ msg, ...rec }) => this.d.log.info(rec, typeof msg === "string" ? msg : "ssh") });
    }
    const want = new Set(addrs.map(stripPrefix));
    await this.#closeListeners([...this.#listeners.keys()].filter((a) => !want.has(a)));
    // A port clash on a later address moves every address to a new P: go round again.
    for (let round = 0; round < 3 && [...want].some((ip) => !this.#listeners.has(ip)); round++) {
      for (const ip of want) if (!this.#listeners.has(ip)) await this.#listen(ip);
    }
    this.d.divert.configure([...this.#listeners.keys()], this.#listeners.size > 0 ? this.#port : 0);
  }

  async #listen(ip: string): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const port = this.#port || this.d.randomPort();
      const srv = createServer((s) => this.#accept(s, ip));
      const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        srv.once("error", resolve);
        srv.listen({ host: ip, port, exclusive: true }, () => resolve(null));
      });
      if (!err) {
        srv.on("error", (e) => this.d.log.warn({ err: e.message, ip }, "SSH listener error"));
        this.#port = port;
        this.#listeners.set(ip, srv);
        this.d.log.info({ ip, port }, "SSH server listening (tailnet port 22 diverted here)");
        return;
      }
      srv.close();
      if (err.code === "EADDRINUSE" && this.#listeners.size === 0) {
        this.#port = 0;
        continue; // another random port
      }
      if (err.code === "EADDRINUSE") {
        // P is taken on this address only: move every address to a new port.
        await this.#closeListeners([...this.#listeners.keys()]);
        this.#port = 0;
        continue;
      }
      this.d.log.warn({ err: err.message, ip, port }, "SSH server cannot listen on this tailnet address");
      return;
    }
  }

  #accept(s: Socket, ip: string): void {
    const remote = s.remoteAddress ?? "";
    const rport = s.remotePort ?? 0;
    if (!this.d.divert.takeFlow(remote, rport)) {
      this.d.log.warn({ remote, rport }, "SSH: connection to the internal port not through the tailnet diversion; closed");
      s.destroy();
      return;
    }
    if (!this.#server) {
      s.destroy(); // stopping
      return;
    }
    this.#server.handleConnection(s, { address: remote, port: rport }, { address: ip, port: 22 });
  }

  async #closeListeners(ips: string[]): Promise<void> {
    await Promise.all(
      ips.map((ip) => {
        const srv = this.#listeners.get(ip);
        this.#listeners.delete(ip);
        return new Promise<void>((r) => (srv ? srv.close(() => r()) : r()));
      }),
    );
    if (this.#listeners.size === 0) this.#port = 0;
  }

  /** Stops everything (daemon shutdown). */
  async close(): Promise<void> {
    await this.apply(false, []);
  }
}
