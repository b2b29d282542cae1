/** `lattice-control serve`: opens the database, starts the listener and the admin socket. */
import { readFileSync } from "node:fs";
import type http from "node:http";
import { pino } from "pino";
import { createControl, type Control } from "./app.js";
import { readDerpMapFile, type ServeConfig } from "./config.js";
import type { DERPMap } from "@lattice/types";
import { createMainServer, listenAdminSocket } from "./http/server.js";
import { selfSignedCert } from "./tls.js";
import { OidcLogin } from "./http/oidc.js";
import { mountNodeApi } from "./node-api-mount.js";
import type { ControlNodeBackend } from "./services/node-backend.js";

/** A running server. */
export interface RunningServer {
  control: Control;
  main: http.Server;
  admin: http.Server;
  /** The bound port (useful with port 0). */
  port: number;
  /** The node API's backend (netmap snapshot, change sets). */
  backend: ControlNodeBackend;
  close(): Promise<void>;
}

/** Starts the server with a resolved config. */
export async function serve(cfg: ServeConfig, out: (line: string) => void = console.log): Promise<RunningServer> {
  const derpMap = cfg.derpMapFile ? (readDerpMapFile(cfg.derpMapFile) as unknown as DERPMap) : undefined;
  const log = pino({ level: cfg.logLevel }, pino.destination(2));
  // Background failures are logged, never allowed to take the server down.
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));
  const control = await createControl({
    db: cfg.db,
    options: {
      serverUrl: cfg.serverUrl,
      tailnetDomain: cfg.tailnetDomain,
      ephemeralTimeoutMs: cfg.ephemeralTimeoutMs,
      nodeKeyExpiryMs: cfg.nodeKeyExpiryMs,
    },
    sweepIntervalMs: cfg.sweepIntervalMs,
    onError: (err) => log.error({ err }, "background task failed"),
  });
  let tls: { cert: string | Buffer; key: string | Buffer } | undefined;
  if (cfg.tls && "selfSigned" in cfg.tls) tls = await selfSignedCert(control.settings, new URL(cfg.serverUrl).hostname);
  else if (cfg.tls) tls = { cert: readFileSync(cfg.tls.cert), key: readFileSync(cfg.tls.key) };
  const preHandlers: Array<(req: http.IncomingMessage, res: http.ServerResponse) => boolean> = [];
  const oidc = cfg.oidc ? new OidcLogin(control, cfg.oidc, cfg.serverUrl) : null;
  const main = createMainServer(control, { tls, log, preHandlers, oidc });
  const nodeApi = await mountNodeApi(main, control, log, derpMap);
  preHandlers.push(nodeApi.handleRequest);
  await new Promise<void>((resolve, reject) => {
    main.once("error", reject);
    main.listen(cfg.listenPort, cfg.listenHost, () => resolve());
  });
  const admin = await listenAdminSocket(control, cfg.socket, log);
  const addr = main.address();
  const port = typeof addr === "object" && addr ? addr.port : cfg.listenPort;
  const scheme = tls ? "https" : "http";
  out(`lattice-control listening on ${scheme}://${cfg.listenHost.includes(":") ? `[${cfg.listenHost}]` : cfg.listenHost}:${port}`);
  out(`server URL: ${cfg.serverUrl}`);
  out(`database: ${control.db.kind === "sqlite" ? cfg.db : "postgresql"}`);
  out(`admin socket: ${cfg.socket}`);
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
    async close() {
      nodeApi.close();
      const closed = Promise.all([
        new Promise<void>((r) => main.close(() => r())),
        new Promise<void>((r) => admin.close(() => r())),
      ]);
      main.closeAllConnections();
      admin.closeAllConnections();
      await closed;
      await control.close();
    },
  };
}
