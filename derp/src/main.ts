/**
 * `lattice-derp`: a DERP relay (Tailscale's protocol v2) with a STUN server, optionally
 * meshed with other relays and admitting only nodes the control server vouches for.
 */
import { Command, CommanderError } from "commander";
import { pino } from "pino";
import { buildConfig, type RawFlags } from "./config.js";
import { RelayError } from "./errors.js";
import { startRelay } from "./relay.js";

function program(): Command {
  return new Command("lattice-derp")
    .description("DERP relay and STUN server for Lattice")
    .option("--listen <addr>", "DERP (HTTPS, or HTTP without TLS flags) listen address", ":443")
    .option("--http-port <port>", "plain-HTTP port for /generate_204 and /derp/probe (-1 disables)", "80")
    .option("--stun-port <port>", "STUN UDP port (-1 disables)", "3478")
    .option("--cert <file>", "TLS certificate (PEM)")
    .option("--key <file>", "TLS private key (PEM)")
    .option("--self-signed", "serve HTTPS with a generated self-signed certificate")
    .option("--hostname <name>", "host name for --self-signed", "localhost")
    .option("--mesh-with <urls>", "comma-separated URLs of the other relays of this region")
    .option("--mesh-key-file <file>", "file (mode 0600) holding the 64-hex-digit pre-shared mesh key")
    .option("--verify-clients", "admit only current nodes of the tailnet (asked of --control-url)")
    .option("--control-url <url>", "control server URL for --verify-clients")
    .option("--max-connections <n>", "TCP connections at most", "10000")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace|silent", "info")
    .showHelpAfterError()
    .exitOverride();
}

async function run(argv: string[]): Promise<void> {
  const cmd = program();
  try {
    cmd.parse(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    throw e;
  }
  let cfg;
  try {
    cfg = buildConfig(cmd.opts<RawFlags>());
  } catch (e) {
    process.stderr.write(`lattice-derp: error: ${(e as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  const log = pino({ level: cfg.logLevel, base: { app: "lattice-derp" } }, pino.destination(2));
  if (!cfg.tls) log.warn("serving DERP over plain HTTP (no --cert/--key or --self-signed): only for tests or behind a TLS terminator");
  let relay;
  try {
    relay = await startRelay(cfg, log);
  } catch (e) {
    process.stderr.write(`lattice-derp: error: ${(e as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  log.info({ derpPort: relay.derpPort, httpPort: relay.httpPort, stunPort: relay.stunPort, tls: cfg.tls !== null, mesh: cfg.meshWith.length, verifyClients: cfg.verifyClients, publicKey: Buffer.from(relay.server.publicKey).toString("hex") }, "lattice-derp listening");
  const stop = (sig: string): void => {
    log.info({ sig }, "shutting down");
    void relay.close().then(() => process.exit(0), () => process.exit(1));
    setTimeout(() => process.exit(1), 5000).unref();
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

run(process.argv).catch((e: unknown) => {
  process.stderr.write(`lattice-derp: error: ${e instanceof RelayError ? e.message : (e as Error).stack}\n`);
  process.exitCode = 1;
});
