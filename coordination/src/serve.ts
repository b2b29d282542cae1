/**
 * `lattice-control serve`: one startup sequence that opens every resource in order —
 * DERP map and TLS files, the database (directory, file modes, lock, migrations), the
 * self-signed certificate, OIDC discovery, the embedded DERP relay's STUN socket, the
 * admin socket, and last the HTTP(S) listener, so nothing is served before everything opened. Any failure is one
 * {@link StartupError} naming the setting and its value; whatever was opened before is
 * closed again (lock released, socket removed) before it is thrown.
 */
import { readFileSync } from "node:fs";
import type http from "node:http";
import { createSecureContext } from "node:tls";
import { pino } from "pino";
import { createControl, type Control } from "./app.js";
import { readDerpMapFile, type ServeConfig } from "./config.js";
import type { DERPMap } from "@lattice/types";
import { createMainServer, listenAdminSocket } from "./http/server.js";
import { newListenerCounters, type UpgradeHandler } from "./http/limits.js";
import { fingerprint, selfSignedCert } from "./tls.js";
import { OidcLogin } from "./http/oidc.js";
import { ServerMetrics } from "./http/metrics.js";
import { prettyDestination } from "./log-format.js";
import { mountNodeApi } from "./node-api-mount.js";
import type { ControlNodeBackend } from "./services/node-backend.js";
import { describeSystemError, StartupError } from "./errors.js";
import { checkDerpMapFile, composeDerpMap, embeddedRegion } from "./derp/derp-map.js";
import { createAdmitHandler, newDerpCounters, startEmbeddedDerp, type EmbeddedDerp } from "./derp/embedded.js";

/** A running server. */
export interface RunningServer {
  control: Control;
  main: http.Server;
  admin: http.Server;
  /** The bound port (useful with port 0). */
  port: number;
  /** The node API's backend (netmap snapshot, change sets). */
  backend: ControlNodeBackend;
  /** The embedded DERP relay + STUN server; null with `--no-derp`. */
  derp: EmbeddedDerp | null;
  /** The DERP map handed to nodes (undefined: none configured). */
  derpMap: DERPMap | undefined;
  close(): Promise<void>;
}

/** Options of {@link serve} beyond the config. */
export interface ServeOptions {
  /**
   * Called once when the server can no longer run safely (the PostgreSQL connection
   * holding the database lock was lost). The caller closes the server and exits ≠ 0.
   */
  onFatal?: (e: Error) => void;
}

/** Closers of what startup has opened so far, run in reverse order on failure. */
class Opened {
  private readonly closers: Array<() => Promise<void> | void> = [];
  add(close: () => Promise<void> | void): void {
    this.closers.push(close);
  }
  async closeAll(): Promise<void> {
    for (const c of this.closers.reverse()) await Promise.resolve().then(c).catch(() => {});
  }
}

function closeServer(s: http.Server): Promise<void> {
  const closed = new Promise<void>((r) => s.close(() => r()));
  s.closeAllConnections();
  return closed;
}

/** Reads --tls-cert/--tls-key and checks that they parse and belong together. */
function readTlsFiles(cert: string, key: string): { cert: Buffer; key: Buffer } {
  const read = (setting: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new StartupError("tls_invalid", setting, path, `cannot read: ${describeSystemError(e)}`);
    }
  };
  const c = read("--tls-cert", cert);
  const k = read("--tls-key", key);
  try {
    createSecureContext({ cert: c });
  } catch (e) {
    throw new StartupError("tls_invalid", "--tls-cert", cert, `not a usable PEM certificate: ${(e as Error).message}`);
  }
  try {
    createSecureContext({ key: k });
  } catch (e) {
    throw new StartupError("tls_invalid", "--tls-key", key, `not a usable PEM private key: ${(e as Error).message}`);
  }
  try {
    createSecureContext({ cert: c, key: k });
  } catch (e) {
    throw new StartupError("tls_invalid", "--tls-key", key, `does not match --tls-cert ${cert}: ${(e as Error).message}`);
  }
  return { cert: c, key: k };
}

/**
 * The `postgres://` URL with the password read from `--db-password-file` (first line; the
 * file is read as it is, like the OIDC secret file).
 * @throws {StartupError} `config_invalid` when the file cannot be read, is empty, or `--db` is not PostgreSQL.
 */
export function withPasswordFile(db: string, file: string): string {
  if (!/^postgres(ql)?:\/\//i.test(db)) throw new StartupError("config_invalid", "--db-password-file", file, "only applies to a postgres:// --db");
  let pw: string;
  try {
    pw = readFileSync(file, "utf8").split(/\r?\n/)[0] ?? "";
  } catch (e) {
    throw new StartupError("config_invalid", "--db-password-file", file, `cannot read: ${describeSystemError(e)}`);
  }
  if (pw === "") throw new StartupError("config_invalid", "--db-password-file", file, "the file is empty");
  const u = new URL(db);
  u.password = encodeURIComponent(pw);
  return u.toString();
}

/** Binds the main listener; a failure names `--listen`. */
function listenMain(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      const shown = `${host.includes(":") ? `[${host}]` : host}:${port}`;
      reject(new StartupError("listen_failed", "--listen", shown, `cannot listen: ${describeSystemError(e)}`));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/**
 * Starts the server with a resolved config.
 * @throws {StartupError} when any resource cannot be opened (all opened ones closed again).
 */
export async function serve(cfg: ServeConfig, out: (line: string) => void = console.log, so: ServeOptions = {}): Promise<RunningServer> {
  const opened = new Opened();
  try {
    return await start(cfg, out, so, opened);
  } catch (e) {
    await opened.closeAll();
    throw e;
  }
}

async function start(cfg: ServeConfig, out: (line: string) => void, so: ServeOptions, opened: Opened): Promise<RunningServer> {
  const fileDerpMap = cfg.derpMapFile ? (readDerpMapFile(cfg.derpMapFile) as unknown as DERPMap) : undefined;
  if (fileDerpMap) checkDerpMapFile(fileDerpMap, cfg.derpMapFile!, cfg.derp);
  let tls: { cert: string | Buffer; key: string | Buffer } | undefined;
  if (cfg.tls && !("selfSigned" in cfg.tls)) tls = readTlsFiles(cfg.tls.cert, cfg.tls.key);

  // JSON lines, or readable lines when stderr is a terminal (log-format.ts).
  const log = pino({ level: cfg.logLevel }, process.stderr.isTTY ? prettyDestination(process.stderr) : pino.destination(2));
  // Background failures are logged, never allowed to take the server down.
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));
  let mapStreams = () => 0;
  let nodeCounts = async () => ({ online: 0, offline: 0, pending: 0 });
  const metrics = new ServerMetrics({ nodes: () => nodeCounts(), mapStreams: () => mapStreams() });
  const control = await createControl({
    db: cfg.dbPasswordFile ? withPasswordFile(cfg.db, cfg.dbPasswordFile) : cfg.db,
    options: {
      serverUrl: cfg.serverUrl,
      webSessionMs: cfg.webSessionMs,
      tailnetDomain: cfg.tailnetDomain,
      ephemeralTimeoutMs: cfg.ephemeralTimeoutMs,
      nodeKeyExpiryMs: cfg.nodeKeyExpiryMs,
      registrationTimeoutMs: cfg.nodeLimits.registrationTimeoutMs,
      registrationIdleMs: cfg.nodeLimits.registrationIdleMs,
      maxPendingRegistrations: cfg.nodeLimits.maxPendingRegistrations,
      maxPendingRegistrationsPerSource: cfg.nodeLimits.maxPendingRegistrationsPerSource,
    },
    sweepIntervalMs: cfg.sweepIntervalMs,
    onError: (err) => log.error({ err }, "background task failed"),
    onPolicyCompile: (ms, ok) => metrics.compiled(ms, ok),
    onAudit: (e) => log.info({ audit: { actor: e.actor, action: e.action, target: e.target, source: e.source } }, "admin action"),
    allowInsecurePermissions: cfg.allowInsecurePermissions,
    onDbLockLost: (err) => {
      log.fatal({ err }, "lost the database lock (PostgreSQL connection); stopping");
      so.onFatal?.(err);
    },
  });
  opened.add(() => control.close());
  nodeCounts = async () => {
    const rows = await control.db.kysely
      .selectFrom("nodes")
      .select((eb) => ["online", "approved", eb.fn.countAll<number>().as("n")])
      .groupBy(["online", "approved"])
      .execute();
    const out = { online: 0, offline: 0, pending: 0 };
    for (const r of rows) out[!r.approved ? "pending" : r.online ? "online" : "offline"] += Number(r.n);
    return out;
  };

  let selfSignedNote: string | null = null;
  if (cfg.tls && "selfSigned" in cfg.tls) {
    const host = new URL(cfg.serverUrl).hostname;
    try {
      const made = await selfSignedCert(control.settings, host);
      tls = made;
      selfSignedNote = made.host === host ? "" : ` (made for ${made.host}; kept so pinned fingerprints stay valid — \`lattice-control tls rotate\` makes a new one at the next start)`;
    } catch (e) {
      throw new StartupError("tls_invalid", "--tls-self-signed", `(for ${host})`, `cannot make the certificate: ${(e as Error).message}`);
    }
  }
  const oidc = cfg.oidc ? new OidcLogin(control, cfg.oidc, cfg.serverUrl) : null;
  if (oidc) {
    try {
      await oidc.ready();
    } catch (e) {
      throw new StartupError("oidc_unavailable", "--oidc-issuer", cfg.oidc!.issuer, `discovery failed: ${(e as Error).message}${(e as Error).cause ? ` (${describeSystemError((e as Error).cause)})` : ""}`);
    }
  }

  const preHandlers: Array<(req: http.IncomingMessage, res: http.ServerResponse) => boolean> = [];
  const upgradeHandlers: UpgradeHandler[] = [];
  const counters = { http: newListenerCounters(), admin: newListenerCounters() };
  const derpCounters = newDerpCounters();
  preHandlers.push(createAdmitHandler(control, derpCounters, log));
  let embedded: EmbeddedDerp | null = null;
  if (cfg.derp) {
    try {
      embedded = await startEmbeddedDerp(control, cfg.listenHost, cfg.derp.stunPort, derpCounters, log);
    } catch (e) {
      throw new StartupError("listen_failed", "--stun-port", String(cfg.derp.stunPort), `cannot listen for STUN on UDP: ${describeSystemError(e)} (another STUN server running? pick a port, or -1 to disable STUN)`);
    }
    const running = embedded;
    opened.add(() => running.close());
    preHandlers.push(running.handleRequest);
    upgradeHandlers.push(running.handleUpgrade);
  }
  const derpMap = composeDerpMap(fileDerpMap, cfg.derp && embedded ? embeddedRegion(cfg.serverUrl, cfg.derp, embedded.stunPort) : null);
  const main = createMainServer(control, { tls, log, preHandlers, oidc, limits: cfg.limits, counters: counters.http, upgradeHandlers, metrics });
  const nodeApi = await mountNodeApi(control, log, derpMap, cfg.limits, {
    maxRegisterBodyBytes: cfg.nodeLimits.maxRegisterRequestBytes,
    maxHostinfoBytes: cfg.nodeLimits.maxHostinfoBytes,
    hostinfoMinIntervalMs: cfg.nodeLimits.hostinfoMinIntervalMs,
  }, (outcome, code) => {
    metrics.registrations.inc({ outcome });
    if (code) metrics.refusals.inc({ code });
  });
  mapStreams = () => nodeApi.api.activeStreams();
  opened.add(() => nodeApi.close());
  preHandlers.push(nodeApi.handleRequest);
  upgradeHandlers.push(nodeApi.handleUpgrade);

  const admin = await listenAdminSocket(control, cfg.socket, log, {
    limits: cfg.limits,
    counters: counters.admin,
    tls: () => (tls ? { selfSigned: selfSignedNote !== null, fingerprint: fingerprint(tls.cert) } : null),
    metrics: () => ({ listeners: counters, derp: embedded ? embedded.stats() : { counters: derpCounters }, control: { ...nodeApi.api.counters, activeMapStreams: nodeApi.api.activeStreams(), bodyBytesInFlight: nodeApi.api.bodyBytesInFlight() } }),
  });
  opened.add(() => closeServer(admin));
  await listenMain(main, cfg.listenHost, cfg.listenPort);
  opened.add(() => closeServer(main));

  log.info({ listen: `${cfg.listenHost}:${cfg.listenPort}`, serverUrl: cfg.serverUrl, db: control.db.kind, socket: cfg.socket, tls: !!tls, oidc: !!oidc }, "lattice-control started");
  const addr = main.address();
  const port = typeof addr === "object" && addr ? addr.port : cfg.listenPort;
  const scheme = tls ? "https" : "http";
  out(`lattice-control listening on ${scheme}://${cfg.listenHost.includes(":") ? `[${cfg.listenHost}]` : cfg.listenHost}:${port}`);
  out(`server URL: ${cfg.serverUrl}`);
  out(`database: ${control.db.kind === "sqlite" ? cfg.db : "postgresql"}`);
  if (tls) out(`TLS certificate SHA-256 fingerprint: ${fingerprint(tls.cert)}${selfSignedNote ?? ""}`);
  out(`admin socket: ${cfg.socket}`);
  if (embedded) out(`DERP relay: region ${cfg.derp!.regionId} (${cfg.derp!.regionCode}) at ${cfg.serverUrl}/derp, STUN ${embedded.stunPort === null ? "off" : `on UDP port ${embedded.stunPort}`}`);
  if (oidc) out(`OIDC login: ${oidc.config.issuer} (redirect URI ${oidc.redirectUri})${oidc.config.only ? ", local accounts disabled" : ""}`);
  out(`To add the first node, create a user and an auth key:`);
  out(`  lattice-control users create alice --password-stdin`);
  out(`  lattice-control keys create --user alice --preapproved`);
  out(`then on the node: lattice up --login-server ${cfg.serverUrl} --auth-key <key>`);
  return {
    control,
    main,
    admin,
    port,
    backend: nodeApi.backend,
    derp: embedded,
    derpMap,
    async close() {
      nodeApi.close();
      await embedded?.close();
      await Promise.all([closeServer(main), closeServer(admin)]);
      await control.close();
    },
  };
}
