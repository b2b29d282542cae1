/**
 * Assembles lattice-derp: the DERP Node edge of @lattice/derp ({@link createNodeDerp}:
 * `GET /derp` with `Upgrade: DERP`, `/derp/probe`, `/generate_204`) behind an HTTP(S)
 * listener, an optional plain-HTTP port, the STUN server of @lattice/stun, the mesh links,
 * the `--verify-clients` admission and the loopback-only `/debug/stats`.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createNodeDerp, type DerpServer } from "@lattice/derp";
import { startStunServer, type StunServer } from "@lattice/stun";
import type { Logger } from "pino";
import type { RelayConfig } from "./config.js";
import { RelayError } from "./errors.js";
import { startMesh, type Mesh } from "./mesh.js";
import { makeVerifier, type Verifier } from "./verify.js";

export interface Relay {
  readonly server: DerpServer;
  readonly derpPort: number;
  readonly httpPort: number | null;
  readonly stunPort: number | null;
  stats(): object;
  close(): Promise<void>;
}

/** Generates a throw-away self-signed certificate with the `openssl` tool. */
function selfSigned(hostname: string): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "lattice-derp-tls-"));
  try {
    const san = /^[\d.]+$/.test(hostname) || hostname.includes(":") ? `IP:${hostname}` : `DNS:${hostname},IP:127.0.0.1,IP:::1`;
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "825",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-subj", `/CN=${hostname}`, "-addext", `subjectAltName=${san}`], { stdio: ["ignore", "ignore", "pipe"] });
    return { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") };
  } catch (e) {
    throw new RelayError("ERR_TLS", `--self-signed: cannot generate a certificate with openssl: ${(e as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readPem(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new RelayError("ERR_TLS", `${flag} ${JSON.stringify(path)}: cannot read: ${(e as Error).message}`);
  }
}

const isLoopback = (a: string | undefined): boolean => a === "127.0.0.1" || a === "::1" || a === "::ffff:127.0.0.1";

function listen(srv: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once("error", (e: NodeJS.ErrnoException) => reject(new RelayError("ERR_LISTEN", `cannot listen on ${host || "*"}:${port}: ${e.message}`)));
    srv.listen({ host: host || undefined, port }, () => resolve((srv.address() as AddressInfo).port));
  });
}

function limit(srv: Server, maxConnections: number): void {
  srv.maxConnections = maxConnections;
  srv.headersTimeout = 10_000;
  srv.requestTimeout = 10_000;
  srv.keepAliveTimeout = 5_000;
  srv.maxHeadersCount = 64;
  srv.timeout = 10_000; // idle socket before any request; upgraded sockets turn it off
}

/** Starts everything; rejects with a RelayError if a listener or TLS material fails. */
export async function startRelay(cfg: RelayConfig, log: Logger): Promise<Relay> {
  const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));
  const now = (): number => performance.now();
  let verifier: Verifier | null = null;
  const privateKey = random(32);
  const derp = createNodeDerp({
    privateKey,
    random,
    now,
    meshKey: cfg.meshKey,
    ...(cfg.verifyClients ? { admit: (c, r) => verifier!.admit(c, r) } : {}),
    onConnClose: (remote, reason) => {
      if (reason) log.debug({ remote, reason }, "derp connection closed");
    },
  });
  const server = derp.server;
  if (cfg.verifyClients) verifier = makeVerifier(cfg.controlUrl!, log);
  let stun: StunServer | null = null;
  let mesh: Mesh | null = null;

  const stats = (): object => ({
    derp: server.stats,
    stun: stun?.stats ?? null,
    mesh: mesh?.links ?? [],
    verify: verifier?.stats ?? null,
  });

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (derp.handleRequest(req, res)) return;
    const path = (req.url ?? "/").split("?")[0];
    switch (path) {
      case "/debug/stats":
        if (!isLoopback(req.socket.remoteAddress)) break;
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(stats()));
        return;
      case "/":
        res.writeHead(200, { "content-type": "text/plain" }).end("lattice-derp: a DERP relay for Lattice\n");
        return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  };

  const onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    socket.on("error", () => {});
    if (derp.handleUpgrade(req, socket, head)) return;
    socket.end("HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nDERP requires Upgrade: DERP on /derp\n");
  };

  let tlsMaterial: { cert: string; key: string } | null = null;
  if (cfg.tls && "selfSigned" in cfg.tls) tlsMaterial = selfSigned(cfg.tls.hostname);
  else if (cfg.tls) tlsMaterial = { cert: readPem("--cert", cfg.tls.cert), key: readPem("--key", cfg.tls.key) };
  const main: Server = tlsMaterial
    ? createHttpsServer({ cert: tlsMaterial.cert, key: tlsMaterial.key, maxHeaderSize: 16 << 10, handshakeTimeout: 10_000, connectionsCheckingInterval: 2_000 }, handler)
    : createHttpServer({ maxHeaderSize: 16 << 10, connectionsCheckingInterval: 2_000 }, handler);
  limit(main, cfg.maxConnections);
  main.on("upgrade", onUpgrade);
  main.on("clientError", (_e, socket: Socket) => socket.destroy());
  const derpPort = await listen(main, cfg.listen.host, cfg.listen.port);

  let plain: Server | null = null;
  let httpPort: number | null = null;
  if (cfg.httpPort !== null && (tlsMaterial !== null || cfg.httpPort !== derpPort)) {
    plain = createHttpServer({ maxHeaderSize: 16 << 10, connectionsCheckingInterval: 2_000 }, handler);
    limit(plain, Math.min(cfg.maxConnections, 1024));
    plain.on("clientError", (_e, socket: Socket) => socket.destroy());
    httpPort = await listen(plain, cfg.listen.host, cfg.httpPort);
  }
  if (cfg.stunPort !== null) {
    try {
      stun = await startStunServer(cfg.listen.host, cfg.stunPort);
    } catch (e) {
      throw new RelayError("ERR_LISTEN", `cannot listen for STUN on UDP port ${cfg.stunPort}: ${(e as Error).message}`);
    }
  }
  // TLS is verified on mesh links: the mesh key is sealed to whatever server key the peer
  // presents, so an unverified link would hand the key to a man in the middle.
  if (cfg.meshWith.length > 0) mesh = startMesh(server, privateKey, cfg.meshKey!, cfg.meshWith, log, false);

  return {
    server,
    derpPort,
    httpPort,
    stunPort: stun?.port ?? null,
    stats,
    async close() {
      mesh?.close();
      derp.close("relay shutting down");
      await Promise.all([
        new Promise<void>((r) => main.close(() => r())),
        plain ? new Promise<void>((r) => plain!.close(() => r())) : Promise.resolve(),
        stun?.close(),
      ]);
    },
  };
}
