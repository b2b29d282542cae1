/**
 * Lattice's SSH server (Tailscale SSH semantics on ssh2): identity from the tailnet, the
 * node's SSHPolicy decides, sessions run as the mapped local user.
 *
 * The node daemon plugs it in through `SshBackend` (as tailscale's ssh/tailssh reaches
 * ipnlocal) and either lets it `listen(host, port)` or hands it accepted sockets with
 * `handleConnection(socket, remote, local)` (diverted port 22: the original source and
 * destination addresses are the daemon's to tell). See docs in daemon/src/ssh/README.md.
 *
 * Limits (hostile input is dropped and counted in `stats`, never thrown):
 * `handshakeTimeoutMs` from accept to authenticated (paused while a check holds the
 * connection, which has its own `checkTimeoutMs`), `maxUnauthenticatedPerSource` and
 * `maxUnauthenticated` concurrent pre-auth connections (more are closed at once, like
 * sshd's MaxStartups, but per source first: the source is a tailnet peer, so a flooding
 * peer exhausts only its own budget),
 * `maxConnections`, `maxSessionsPerConnection` channels, `maxLocalForwardsPerConnection`,
 * `maxAuthAttempts`.
 */
import { createServer, type Server as NetServer, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import ssh2, { type AuthContext, type Connection } from "ssh2";
import type { Node, SSHAction, SSHPolicy, UserProfile } from "@lattice/types";
import { startAgentListener, type AgentListener } from "./agent.js";
import { abortableSleep, runCheck } from "./check.js";
import { directTcpip, RemoteForwards } from "./forward.js";
import { publicHostKeys, type HostKey } from "./hostkeys.js";
import { canonicalIp, describeSource, evaluateSshPolicy, expandDelegateUrl, isTagged, shortName, type SshConnIdentity } from "./policy.js";
import { handleSession, type LiveSession } from "./session.js";
import { DisconnectReason, sendAuthBanner, sendDisconnect } from "./ssh2-internals.js";
import { lookupUser, type LocalUser } from "./users.js";
import { SYSTEM_UTMP, type UtmpPaths } from "./utmp.js";

/**
 * Idle time before the kernel's TCP keepalive probes start on a client connection (ms);
 * a peer gone without a FIN/RST is then found by the probes (the client's kernel answers
 * them even while the SSH client is not reading).
 */
export const TCP_KEEPALIVE_IDLE_MS = 15_000;

/** What the SSH server needs from the node daemon. */
export interface SshBackend {
  /** The peer owning `srcIp` by cryptokey routing (its node and user; user null when tagged). */
  whois(srcIp: string): { node: Node; user: UserProfile | null } | undefined;
  /** This node, or undefined when not (yet) in a netmap. */
  self(): { node: Node } | undefined;
  /** The current SSH policy from the netmap. */
  sshPolicy(): SSHPolicy | undefined;
  /** Subscribes to policy/netmap changes; returns the unsubscribe function. */
  onPolicyChange(cb: () => void): () => void;
  /** GETs a HoldAndDelegate URL over the Noise channel (long poll); rejects on failure. */
  fetchCheck(url: string, signal: AbortSignal): Promise<SSHAction>;
}

/** A socket address. */
export interface SockAddr {
  address: string;
  port: number;
}

/** Options of SshServer. */
export interface SshServerOptions {
  backend: SshBackend;
  hostKeys: readonly HostKey[];
  /** One structured record per event (default: a JSON line on stderr). */
  log?: (rec: Record<string, unknown>) => void;
  /** Clock (rule expiry). */
  now?: () => Date;
  /** Accept → authenticated, ms (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Concurrent unauthenticated connections, all sources (default 1024). */
  maxUnauthenticated?: number;
  /** Concurrent unauthenticated connections from one source address (default 16), so one peer's flood cannot lock out the others. */
  maxUnauthenticatedPerSource?: number;
  /** Concurrent connections (default 1024). */
  maxConnections?: number;
  /** Session channels per connection (default 64). */
  maxSessionsPerConnection?: number;
  /** Auth requests per connection (default 32). */
  maxAuthAttempts?: number;
  /** Concurrent -L (direct-tcpip) channels per connection (default 256). */
  maxLocalForwardsPerConnection?: number;
  /** Overall check-mode hold, ms (default 30 min). */
  checkTimeoutMs?: number;
  /** The sftp subsystem program (default /usr/lib/openssh/sftp-server). */
  sftpServerPath?: string;
  /** util-linux setpriv (default "setpriv" on PATH). */
  setprivPath?: string;
  /** utmp/wtmp for PTY sessions (default /var/run/utmp, /var/log/wtmp when root; null: none). */
  loginRecords?: UtmpPaths | null;
}

/** Counters of dropped/refused input. */
export interface SshServerStats {
  accepted: number;
  refusedOverLimit: number;
  handshakeTimeouts: number;
  protocolErrors: number;
  authDenied: number;
  authAccepted: number;
  revoked: number;
}

interface SockMeta {
  remote: SockAddr;
  local: SockAddr;
  authenticated: boolean;
  holding: boolean;
  timer: NodeJS.Timeout;
}

type AuthOutcome =
  | { ok: true; user: LocalUser; action: SSHAction; rule: number; acceptEnv: string[]; id: SshConnIdentity }
  | { ok: false; message: string };

/** Formats a Go-style duration for messages ("1h0m0s" style is overkill: "90s", "2h"). */
function fmtDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** The SSH server. */
export class SshServer {
  /** Refusals and drops, for metrics and tests. */
  readonly stats: SshServerStats = {
    accepted: 0,
    refusedOverLimit: 0,
    handshakeTimeouts: 0,
    protocolErrors: 0,
    authDenied: 0,
    authAccepted: 0,
    revoked: 0,
  };
  private readonly ssh: ssh2.Server;
  private readonly metas = new WeakMap<object, SockMeta>();
  private readonly conns = new Set<SshConn>();
  private readonly sockets = new Set<Duplex>();
  private unauthenticated = 0;
  private readonly unauthBySource = new Map<string, number>();
  private connSeq = 0;
  private readonly nets: NetServer[] = [];
  private readonly unsubscribe: () => void;
  private readonly o: Required<Omit<SshServerOptions, "log" | "now" | "backend" | "hostKeys">>;
  readonly log: (rec: Record<string, unknown>) => void;
  readonly now: () => Date;

  constructor(private readonly opts: SshServerOptions) {
    this.o = {
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 30_000,
      maxUnauthenticated: opts.maxUnauthenticated ?? 1024,
      maxUnauthenticatedPerSource: opts.maxUnauthenticatedPerSource ?? 16,
      maxConnections: opts.maxConnections ?? 1024,
      maxSessionsPerConnection: opts.maxSessionsPerConnection ?? 64,
      maxAuthAttempts: opts.maxAuthAttempts ?? 32,
      maxLocalForwardsPerConnection: opts.maxLocalForwardsPerConnection ?? 256,
      checkTimeoutMs: opts.checkTimeoutMs ?? 30 * 60_000,
      sftpServerPath: opts.sftpServerPath ?? "/usr/lib/openssh/sftp-server",
      setprivPath: opts.setprivPath ?? "setpriv",
      loginRecords: opts.loginRecords !== undefined ? opts.loginRecords : process.getuid?.() === 0 ? SYSTEM_UTMP : null,
    };
    this.log = opts.log ?? ((rec) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...rec }) + "\n"));
    this.now = opts.now ?? (() => new Date());
    this.ssh = new ssh2.Server(
      // No SSH-level client-alive pings (OpenSSH's ClientAliveInterval defaults to 0): a
      // client that is idle without reading — net-ssh's pooled connections in SSHKit/Kamal
      // sit for minutes between deploy steps — never answers them and would be dropped.
      // Dead peers are found by TCP keepalive instead (handleConnection), which the
      // client's kernel answers. (ssh2 falls back to its own 15 s × 3 for 0 or non-finite
      // values, so "off" is the largest interval a timer takes, ~24.8 days.)
      { hostKeys: opts.hostKeys.map((k) => k.privateKey), ident: "Lattice", keepaliveInterval: 2 ** 31 - 1 },
      (client) => this.onClient(client),
    );
    this.ssh.on("error", () => this.stats.protocolErrors++);
    this.unsubscribe = opts.backend.onPolicyChange(() => this.recheck());
  }

  /** The public host keys ("ssh-ed25519 AAAA…"), for Hostinfo.SSH_HostKeys. */
  hostPublicKeys(): string[] {
    return publicHostKeys(this.opts.hostKeys);
  }

  /** Listens on host:port (port 0 = any); resolves the bound address. */
  listen(host: string, port: number): Promise<SockAddr> {
    const srv = createServer((s) => this.handleConnection(s));
    this.nets.push(srv);
    return new Promise((resolve, reject) => {
      srv.once("error", reject);
      srv.listen({ host, port }, () => {
        srv.removeListener("error", reject);
        srv.on("error", () => this.stats.protocolErrors++);
        const a = srv.address() as { address: string; port: number };
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  /**
   * Serves one accepted stream. `remote` is the connection's true source (the tailnet
   * peer address; default: the socket's remote address); `local` its destination
   * (default: the socket's local address).
   */
  handleConnection(socket: Socket | Duplex, remote?: SockAddr, local?: SockAddr): void {
    const s = socket as Socket;
    s.on("error", () => undefined);
    if (typeof s.setKeepAlive === "function") s.setKeepAlive(true, TCP_KEEPALIVE_IDLE_MS);
    const rem = remote ?? { address: s.remoteAddress ?? "", port: s.remotePort ?? 0 };
    const src = canonicalIp(rem.address);
    const fromSrc = this.unauthBySource.get(src) ?? 0;
    if (
      this.unauthenticated >= this.o.maxUnauthenticated ||
      fromSrc >= this.o.maxUnauthenticatedPerSource ||
      this.sockets.size >= this.o.maxConnections
    ) {
      this.stats.refusedOverLimit++;
      s.destroy();
      return;
    }
    this.stats.accepted++;
    this.unauthenticated++;
    this.unauthBySource.set(src, fromSrc + 1);
    this.sockets.add(s);
    const meta: SockMeta = {
      remote: rem,
      local: local ?? { address: s.localAddress ?? "", port: s.localPort ?? 0 },
      authenticated: false,
      holding: false,
      timer: setTimeout(() => {
        if (meta.authenticated || meta.holding) return;
        this.stats.handshakeTimeouts++;
        s.destroy();
      }, this.o.handshakeTimeoutMs),
    };
    meta.timer.unref();
    this.metas.set(s, meta);
    s.once("close", () => {
      clearTimeout(meta.timer);
      this.sockets.delete(s);
      if (!meta.authenticated) this.leavePreauth(meta);
    });
    s.setNoDelay?.(true);
    this.ssh.injectSocket(s as Socket);
  }

  /** Marks a connection authenticated (leaves the pre-auth budget). */
  private authenticated(meta: SockMeta): void {
    if (meta.authenticated) return;
    meta.authenticated = true;
    clearTimeout(meta.timer);
    this.leavePreauth(meta);
  }

  private leavePreauth(meta: SockMeta): void {
    this.unauthenticated--;
    const src = canonicalIp(meta.remote.address);
    const n = (this.unauthBySource.get(src) ?? 1) - 1;
    if (n <= 0) this.unauthBySource.delete(src);
    else this.unauthBySource.set(src, n);
  }

  private onClient(client: Connection): void {
    client.on("error", () => this.stats.protocolErrors++);
    const sock = (client as unknown as { _sock?: object })._sock;
    const meta = sock ? this.metas.get(sock) : undefined;
    if (!meta) {
      client.end();
      return;
    }
    const c = new SshConn(++this.connSeq, this, client, meta, this.opts.backend, this.o);
    this.conns.add(c);
    client.on("close", () => {
      this.conns.delete(c);
      c.cleanup();
    });
  }

  /** Re-evaluates every authenticated connection against the current policy. */
  recheck(): void {
    for (const c of this.conns) c.recheck();
  }

  /** Counts a finished auth decision. */
  countAuth(ok: boolean): void {
    if (ok) this.stats.authAccepted++;
    else this.stats.authDenied++;
  }

  /** Marks `meta` authenticated (called by a connection on `ready`). */
  markAuthenticated(meta: SockMeta): void {
    this.authenticated(meta);
  }

  /** Number of live SSH connections (after the SSH header). */
  get connectionCount(): number {
    return this.conns.size;
  }

  /** Stops listening, ends every connection, unsubscribes from the backend. */
  async close(): Promise<void> {
    this.unsubscribe();
    for (const c of this.conns) c.end();
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.nets.map((n) => new Promise<void>((r) => n.close(() => r()))));
  }
}

/** One SSH connection's state: auth decision, sessions, forwards, agent. */
class SshConn {
  private attempts = 0;
  private decision: Promise<AuthOutcome> | null = null;
  private outcome: Extract<AuthOutcome, { ok: true }> | null = null;
  private readonly abort = new AbortController();
  private readonly live = new Set<LiveSession>();
  private sessions = 0;
  private localForwards = 0;
  private forwards: RemoteForwards | null = null;
  private agent: Promise<AgentListener> | null = null;
  private durationTimer: NodeJS.Timeout | null = null;
  private ending = false;
  private readonly t0 = Date.now();

  constructor(
    private readonly id: number,
    private readonly server: SshServer,
    private readonly client: Connection,
    private readonly meta: SockMeta,
    private readonly backend: SshBackend,
    private readonly o: Required<Omit<SshServerOptions, "log" | "now" | "backend" | "hostKeys">>,
  ) {
    client.on("authentication", (ctx) => this.onAuth(ctx));
    client.on("ready", () => this.onReady());
  }

  private fields(): Record<string, unknown> {
    const out = this.outcome;
    return {
      conn: this.id,
      srcIp: canonicalIp(this.meta.remote.address),
      ...(out
        ? {
            from: describeSource(out.id.srcNode, out.id.srcUser),
            node: shortName(out.id.srcNode),
            sshUser: out.id.sshUser,
            localUser: out.user.name,
            rule: out.rule,
          }
        : {}),
    };
  }

  private onAuth(ctx: AuthContext): void {
    if (++this.attempts > this.o.maxAuthAttempts) {
      sendDisconnect(this.client, DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication attempts");
      this.client.end();
      return;
    }
    // The credential is ignored: the tailnet identity and the policy decide (Tailscale).
    this.decision ??= this.decide(ctx.username);
    const reply = (ok: boolean): void => {
      try {
        if (ok) ctx.accept();
        else ctx.reject([]);
      } catch {
        // the connection went away while the decision was pending
      }
    };
    this.decision.then(
      (out) => reply(out.ok),
      () => reply(false),
    );
  }

  private deny(message: string): AuthOutcome {
    this.server.countAuth(false);
    this.server.log({ msg: "ssh auth denied", ...this.fields(), reason: message });
    try {
      sendAuthBanner(this.client, message);
    } catch {
      // connection gone
    }
    // Clients that hide banners (net-ssh, paramiko) still see why, in the disconnect.
    setImmediate(() => {
      try {
        sendDisconnect(this.client, DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, message);
      } catch {
        // gone
      }
      this.client.end();
    });
    return { ok: false, message };
  }

  private identity(sshUser: string): SshConnIdentity | string {
    const srcIp = canonicalIp(this.meta.remote.address);
    const peer = this.backend.whois(srcIp);
    if (!peer) return `lattice: ${srcIp} is not a node of this tailnet`;
    const self = this.backend.self();
    if (!self) return "lattice: this node is not connected to its tailnet";
    return { srcIp, srcNode: peer.node, srcUser: peer.user, dstNode: self.node, sshUser };
  }

  private async decide(sshUser: string): Promise<AuthOutcome> {
    const id = this.identity(sshUser);
    if (typeof id === "string") return this.deny(id);
    const d = evaluateSshPolicy(this.backend.sshPolicy(), id, this.server.now());
    if (d.kind === "reject") return this.deny(d.rule === null ? `lattice: ${d.message}` : d.message);
    const user = await lookupUser(d.localUser);
    if (!user) return this.deny(`lattice: local user "${d.localUser}" does not exist on ${shortName(id.dstNode)}`);
    let action = d.action;
    if (d.kind === "hold") {
      if (isTagged(id.srcNode) || !id.srcUser) {
        return this.deny(
          `lattice: tailnet policy requires an approval in the browser for SSH as ${sshUser} on ${shortName(id.dstNode)}, ` +
            `which ${describeSource(id.srcNode, id.srcUser)} cannot give (no interactive login)`,
        );
      }
      const dstIp = this.meta.local.address || (id.dstNode.Addresses[0] ?? "").replace(/\/\d+$/, "");
      this.meta.holding = true;
      const res = await runCheck(
        d.action.holdAndDelegate!,
        {
          fetchCheck: (u, sig) => this.backend.fetchCheck(u, sig),
          banner: (t) => sendAuthBanner(this.client, t),
          expand: (u) =>
            expandDelegateUrl(u, {
              srcIp: id.srcIp,
              srcNodeId: id.srcNode.ID,
              dstIp,
              dstNodeId: id.dstNode.ID,
              sshUser,
              localUser: user.name,
            }),
          sleep: abortableSleep,
        },
        { signal: this.abort.signal, timeoutMs: this.o.checkTimeoutMs },
      );
      this.meta.holding = false;
      if (!res.accept) return this.deny(res.message.startsWith("lattice:") ? res.message : `lattice: ${res.message}`);
      action = res.action;
    }
    this.server.countAuth(true);
    const out = { ok: true as const, user, action, rule: d.rule, acceptEnv: d.acceptEnv, id };
    this.outcome = out;
    return out;
  }

  private onReady(): void {
    const out = this.outcome;
    if (!out) {
      this.client.end();
      return;
    }
    this.server.markAuthenticated(this.meta);
    this.server.log({ msg: "ssh connection", ...this.fields() });
    const ns = out.action.sessionDuration ?? 0;
    if (ns > 0) {
      const ms = Math.max(1, Math.round(ns / 1e6));
      this.durationTimer = setTimeout(() => this.revoke(`Session timeout of ${fmtDuration(ms)} elapsed.`), ms);
      this.durationTimer.unref();
    }
    const c = this.client;
    c.on("session", (accept, reject) => {
      if (this.ending || this.sessions >= this.o.maxSessionsPerConnection) return reject();
      this.sessions++;
      const session = accept();
      session.on("close", () => this.sessions--);
      const sid = `${this.id}.${this.sessions}`;
      handleSession(session, {
        user: out.user,
        acceptEnv: out.acceptEnv,
        sshConnection: `${canonicalIp(this.meta.remote.address)} ${this.meta.remote.port} ${canonicalIp(this.meta.local.address)} ${this.meta.local.port}`,
        sshClient: `${canonicalIp(this.meta.remote.address)} ${this.meta.remote.port} ${this.meta.local.port}`,
        sftpServerPath: this.o.sftpServerPath,
        setprivPath: this.o.setprivPath,
        loginRecords: this.o.loginRecords,
        remoteHost: canonicalIp(this.meta.remote.address),
        agentSocket: () => this.agentSocket(),
        track: (s) => {
          this.live.add(s);
          return () => this.live.delete(s);
        },
        log: (msg, f) => this.server.log({ msg, session: sid, ...this.fields(), ...f }),
      });
    });
    c.on("tcpip", (accept, reject, info) => {
      if (!out.action.allowLocalPortForwarding || this.ending) return reject();
      if (this.localForwards >= this.o.maxLocalForwardsPerConnection) return reject();
      this.localForwards++;
      let counted = true;
      const release = (): void => {
        if (counted) this.localForwards--;
        counted = false;
      };
      directTcpip(
        () => {
          const ch = accept();
          ch.once("close", release);
          return ch;
        },
        () => {
          release();
          reject();
        },
        info.destIP,
        info.destPort,
      );
    });
    c.on("openssh.streamlocal", (_accept, reject) => reject());
    c.on("request", (accept, reject, name, info) => {
      const bind = info as { bindAddr?: string; bindPort?: number };
      if (name === "tcpip-forward" && out.action.allowRemotePortForwarding && !this.ending) {
        this.forwards ??= new RemoteForwards(this.client, out.user.uid === 0);
        void this.forwards.add(String(bind.bindAddr ?? ""), Number(bind.bindPort)).then((port) => {
          if (port === null) reject?.();
          else accept?.(port);
        });
        return;
      }
      if (name === "cancel-tcpip-forward" && this.forwards?.cancel(String(bind.bindAddr ?? ""), Number(bind.bindPort))) {
        accept?.();
        return;
      }
      reject?.();
    });
  }

  private agentSocket(): Promise<string | undefined> {
    const out = this.outcome;
    if (!out || !out.action.allowAgentForwarding) return Promise.resolve(undefined);
    this.agent ??= startAgentListener(this.client, out.user);
    return this.agent.then((a) => a.path);
  }

  /** Ends the connection when the current policy no longer allows it ("Access revoked."). */
  recheck(): void {
    const out = this.outcome;
    if (!out || this.ending || !this.meta.authenticated) return;
    let allowed = false;
    try {
      const id = this.identity(out.id.sshUser);
      if (typeof id !== "string") {
        const d = evaluateSshPolicy(this.backend.sshPolicy(), id, this.server.now());
        allowed = d.kind !== "reject" && d.localUser === out.user.name;
      }
    } catch {
      // A backend failure fails closed: the session cannot be shown to be allowed.
      allowed = false;
    }
    if (!allowed) this.revoke("Access revoked.");
  }

  /** Tells every session `message`, hangs them up and closes the connection. */
  revoke(message: string): void {
    if (this.ending) return;
    this.server.stats.revoked++;
    this.server.log({ msg: "ssh connection revoked", ...this.fields(), reason: message });
    for (const s of [...this.live]) s.terminate(message);
    this.ending = true;
    // Let the message and exit-signal packets flush, then close.
    setTimeout(() => this.client.end(), 100).unref();
  }

  end(): void {
    this.ending = true;
    this.client.end();
  }

  cleanup(): void {
    this.abort.abort();
    if (this.durationTimer) clearTimeout(this.durationTimer);
    this.forwards?.closeAll();
    void this.agent?.then((a) => a.close(), () => undefined);
    for (const s of [...this.live]) s.terminate("Connection closed.");
    if (this.outcome) this.server.log({ msg: "ssh connection end", ...this.fields(), durationMs: Date.now() - this.t0 });
  }
}
