/**
 * The `lattice` command line: Tailscale's commands and flags over latticed's LocalAPI.
 * `run(argv, io)` parses, runs one command and returns the exit code; it never calls
 * process.exit, so tests run it in-process. Exit codes: 0 ok, 1 failure (daemon down, LocalAPI
 * error, state not Running, timeout), 2 bad command-line input (unknown flag, bad value).
 * Errors print as `lattice: <message>` on stderr; state messages (`Logged out.`, ...) go to
 * stdout as in Tailscale. Socket: `--socket PATH` (anywhere on the line) > $LATTICE_SOCKET >
 * /var/run/lattice/latticed.sock.
 */
import { Command, CommanderError, Option } from "commander";
import type { CliIo, CommandContext } from "./context.js";
import { CliError, FlagValueError, NotRunningStateError, UsageError } from "./errors.js";
import {
  noArgs, normalizeGoFlags, parseDurationFlag, parseIntFlag, parseTagsFlag, parseUrlFlag, readAuthKeyFlag,
} from "./flags.js";
import { DEFAULT_SOCKET, LocalClient, type PingType } from "./localapi.js";
import { parseNetcheckFormat, runNetcheck } from "./commands/netcheck.js";
import { runIp } from "./commands/ip.js";
import { cliVersion, runBugreport, runVersion } from "./commands/misc.js";
import { runNc } from "./commands/nc.js";
import { runPing } from "./commands/ping.js";
import { runExitNodeList, runExitNodeSuggest } from "./commands/exitnode.js";
import { runDown, runLogout, runSet } from "./commands/prefs.js";
import { runSsh } from "./commands/ssh.js";
import { runStatus } from "./commands/status.js";
import { runUp } from "./commands/up.js";
import { runWhois } from "./commands/whois.js";
import { runDnsStatus } from "./commands/dns.js";
import { terminalSafe } from "./format.js";
import { advertisesExitNode, calcAdvertiseRoutes, parseAdvertiseRoutes, resolveExitNode } from "./routes.js";
import type { PrefsPatch, UpRequest } from "./types.js";

/** Boolean flags that also take Go's `--flag=true|false` form. */
const BOOL_FLAGS = new Set([
  "ssh", "accept-routes", "accept-dns", "reset", "force-reauth", "json", "peers", "self", "active",
  "until-direct", "tsmp", "icmp", "daemon", "advertise-exit-node", "exit-node-allow-lan-access", "snat-subnet-routes",
]);

/** Flags that `up` and `set` share: the prefs. */
interface PrefFlags {
  hostname?: string;
  ssh?: boolean;
  advertiseTags?: string;
  acceptRoutes?: boolean;
  acceptDns?: boolean;
  advertiseRoutes?: string;
  advertiseExitNode?: boolean;
  exitNode?: string;
  exitNodeAllowLanAccess?: boolean;
  snatSubnetRoutes?: boolean;
}

function addBool(cmd: Command, name: string, help: string): Command {
  return cmd.option(`--${name}`, help).addOption(new Option(`--no-${name}`).hideHelp());
}

function addPrefFlags(cmd: Command): Command {
  cmd.option("--hostname <name>", "hostname to use instead of the one provided by the OS");
  addBool(cmd, "ssh", "run the Lattice SSH server, permitting access per the tailnet policy");
  cmd.option("--advertise-tags <tags>", 'ACL tags to request, comma-separated (e.g. "tag:eng,tag:web")');
  addBool(cmd, "accept-routes", "accept routes advertised by other nodes");
  addBool(cmd, "accept-dns", "accept DNS configuration from the control server");
  cmd.option("--advertise-routes <routes>", 'routes to advertise to other nodes, comma-separated (e.g. "10.0.0.0/8,192.168.0.0/24"); "" clears');
  addBool(cmd, "advertise-exit-node", "offer to be an exit node for internet traffic for the tailnet");
  cmd.option("--exit-node <ip|name>", 'tailnet exit node (IP or name) for internet traffic; "" for none');
  addBool(cmd, "exit-node-allow-lan-access", "allow direct access to the local network when routing traffic via an exit node");
  addBool(cmd, "snat-subnet-routes", "source NAT traffic to local routes advertised with --advertise-routes (default true)");
  return cmd;
}

/**
 * The prefs the flags give, checked before anything is sent (bad input: FlagValueError, exit
 * 2, nothing changed). The routes and exit node flags need the daemon: `--exit-node` is
 * resolved against the status peers, and `--advertise-routes` / `--advertise-exit-node` keep
 * the other part of the current AdvertiseRoutes (routes.ts), except for `up --reset`.
 */
async function prefsPatch(o: PrefFlags, ctx: () => CommandContext, reset: boolean): Promise<PrefsPatch> {
  const p: PrefsPatch = {};
  if (o.hostname !== undefined) p.Hostname = o.hostname;
  if (o.ssh !== undefined) p.RunSSH = o.ssh;
  if (o.advertiseTags !== undefined) p.AdvertiseTags = parseTagsFlag("--advertise-tags", o.advertiseTags);
  if (o.acceptRoutes !== undefined) p.RouteAll = o.acceptRoutes;
  if (o.acceptDns !== undefined) p.CorpDNS = o.acceptDns;
  if (o.exitNodeAllowLanAccess !== undefined) p.ExitNodeAllowLANAccess = o.exitNodeAllowLanAccess;
  if (o.snatSubnetRoutes !== undefined) p.NoSNAT = !o.snatSubnetRoutes;
  const routes = o.advertiseRoutes === undefined ? undefined : parseAdvertiseRoutes("--advertise-routes", o.advertiseRoutes);
  if (o.exitNode !== undefined) {
    p.ExitNodeIP = o.exitNode.trim() === "" ? "" : resolveExitNode("--exit-node", o.exitNode, await ctx().client.status(true));
  }
  if (routes !== undefined || o.advertiseExitNode !== undefined) {
    const current = reset ? [] : ((await ctx().client.prefs()).AdvertiseRoutes ?? []);
    p.AdvertiseRoutes = calcAdvertiseRoutes(routes, o.advertiseExitNode, current);
  }
  if (p.NoSNAT === true && advertisesExitNode(p.AdvertiseRoutes)) {
    ctx().io.err("Warning: --snat-subnet-routes=false applies to exit node traffic too: internet hosts will see tailnet source addresses they cannot answer.\n");
  }
  return p;
}

/** Runs `lattice` with `argv` (without node and script); resolves to the exit code. */
export async function run(argv: readonly string[], rawIo: CliIo): Promise<number> {
  const io: CliIo = {
    out: (t) => rawIo.out(terminalSafe(t)),
    err: (t) => rawIo.err(terminalSafe(t)),
    get stdin() { return rawIo.stdin; },
    get stdout() { return rawIo.stdout; },
    now: () => rawIo.now(),
    sleep: (ms) => rawIo.sleep(ms),
    env: rawIo.env,
  };
  let exitCode = 0;
  let pending: Promise<number> | null = null;
  const program = new Command("lattice")
    .description("lattice: join and inspect a Lattice tailnet (talks to latticed)")
    .version(cliVersion(), "--version", "print the version")
    .option("--socket <path>", `path to latticed's LocalAPI socket (env LATTICE_SOCKET; default ${DEFAULT_SOCKET})`)
    .showHelpAfterError("(run 'lattice help' or 'lattice <command> --help' for usage)")
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();
  program.showSuggestionAfterError(true);

  const ctxOf = (cmd: Command): CommandContext => {
    const socket = (cmd.optsWithGlobals() as { socket?: string }).socket ?? (io.env["LATTICE_SOCKET"] || DEFAULT_SOCKET);
    // an empty socketPath would make node:http dial TCP localhost:80 instead
    if (socket === "") throw new FlagValueError("--socket", socket, "empty path");
    return { io, client: new LocalClient(socket) };
  };
  const start = (f: () => Promise<number>): void => {
    pending = f();
  };

  const up = program.command("up").description("connect to Lattice, logging in if needed")
    .option("--login-server <url>", "base URL of the control server")
    .option("--auth-key <key>", 'node authorization key; "file:PATH" reads it from a file')
    .addOption(new Option("--authkey <key>", "alias of --auth-key").hideHelp());
  addPrefFlags(up);
  addBool(up, "reset", "reset unspecified settings to their default values");
  addBool(up, "force-reauth", "force reauthentication (new node key)");
  up.option("--timeout <duration>", "maximum time to wait for the Running state; 0 waits forever", "0s");
  addBool(up, "json", "output in JSON format");
  up.action((o: PrefFlags & { loginServer?: string; authKey?: string; authkey?: string; reset?: boolean; forceReauth?: boolean; timeout: string; json?: boolean }, cmd: Command) => start(async () => {
    if (o.authKey !== undefined && o.authkey !== undefined) throw new UsageError("--auth-key and --authkey are the same flag; give it once");
    const req: UpRequest = {};
    if (o.loginServer !== undefined) req.ControlURL = parseUrlFlag("--login-server", o.loginServer);
    const key = o.authKey ?? o.authkey;
    if (key !== undefined) req.AuthKey = readAuthKeyFlag(o.authKey !== undefined ? "--auth-key" : "--authkey", key);
    if (o.reset !== undefined) req.Reset = o.reset;
    if (o.forceReauth !== undefined) req.ForceReauth = o.forceReauth;
    const timeoutMs = parseDurationFlag("--timeout", o.timeout);
    const ctx = ctxOf(cmd);
    Object.assign(req, await prefsPatch(o, () => ctx, o.reset === true));
    return runUp(ctx, { request: req, timeoutMs, json: o.json === true });
  }));

  program.command("down").description("disconnect from Lattice (stay logged in)")
    .action((_o: unknown, cmd: Command) => start(() => runDown(ctxOf(cmd))));
  program.command("logout").description("disconnect and expire the node key")
    .action((_o: unknown, cmd: Command) => start(() => runLogout(ctxOf(cmd))));
  const set = program.command("set").description("change preferences without reconnecting");
  addPrefFlags(set);
  set.action((o: PrefFlags, cmd: Command) => start(async () => {
    const ctx = ctxOf(cmd);
    return runSet(ctx, await prefsPatch(o, () => ctx, false));
  }));

  const exitNode = program.command("exit-node").description("show exit nodes and pick one");
  const exitList = exitNode.command("list").description("list the peers offering an exit node");
  addBool(exitList, "json", "output in JSON format");
  exitList.action((o: { json?: boolean }, cmd: Command) => start(() => runExitNodeList(ctxOf(cmd), o.json === true)));
  exitNode.command("suggest").description("suggest the best available exit node")
    .action((_o: unknown, cmd: Command) => start(() => runExitNodeSuggest(ctxOf(cmd))));

  const status = program.command("status").description("show the state of latticed and its connections")
    .argument("[args...]");
  addBool(status, "json", "output the daemon's status JSON");
  addBool(status, "peers", "show the peers (default true)");
  addBool(status, "self", "show this node (default true)");
  addBool(status, "active", "only peers with active sessions");
  status.action((args: string[], o: { json?: boolean; peers?: boolean; self?: boolean; active?: boolean }, cmd: Command) => start(async () => {
    noArgs("status", args);
    return runStatus(ctxOf(cmd), o);
  }));

  program.command("ip").description("show Lattice IP addresses")
    .option("-4", "only IPv4").option("-6", "only IPv6").option("-1", "only the first address")
    .argument("[peer]", "a peer's name or IP (default: this node)")
    .action((peer: string | undefined, o: Record<string, boolean | undefined>, cmd: Command) =>
      start(() => runIp(ctxOf(cmd), { want4: o["4"], want6: o["6"], want1: o["1"] }, peer)));

  const ping = program.command("ping").description("ping a node at the Lattice layer and show the path")
    .option("-c <count>", "pings to send at most; 0 for no limit", "10");
  addBool(ping, "until-direct", "stop once a direct path is established (default true)");
  addBool(ping, "tsmp", "TSMP ping (through WireGuard, not the peer's OS stack)");
  addBool(ping, "icmp", "ICMP ping (through WireGuard)");
  ping.option("--timeout <duration>", "time to wait for each pong", "5s")
    .argument("<host>", "a node's name or tailnet IP")
    .action((host: string, o: { c: string; untilDirect?: boolean; tsmp?: boolean; icmp?: boolean; timeout: string }, cmd: Command) => start(async () => {
      const count = parseIntFlag("-c", o.c, 0, 1_000_000);
      const timeoutMs = parseDurationFlag("--timeout", o.timeout);
      if (timeoutMs <= 0) throw new UsageError(`invalid value ${JSON.stringify(o.timeout)} for --timeout: must be positive`);
      if (o.tsmp && o.icmp) throw new UsageError("--tsmp and --icmp are mutually exclusive");
      const type: PingType = o.tsmp ? "TSMP" : o.icmp ? "ICMP" : "disco";
      return runPing(ctxOf(cmd), { count, untilDirect: o.untilDirect !== false, type, timeoutMs }, host);
    }));

  program.command("netcheck").description("print an analysis of local network conditions")
    .option("--format <format>", 'output format: "text" (default), "json" or "json-line"')
    .action((o: { format?: string }, cmd: Command) => start(async () => runNetcheck(ctxOf(cmd), parseNetcheckFormat(o.format))));

  const whois = program.command("whois").description("show the machine and user behind a tailnet IP")
    .argument("<ip[:port]>");
  addBool(whois, "json", "output in JSON format");
  whois.action((addr: string, o: { json?: boolean }, cmd: Command) => start(() => runWhois(ctxOf(cmd), addr, o.json === true)));

  const dns = program.command("dns").description("show the MagicDNS and host resolver configuration");
  const dnsStatus = dns.command("status").description("show MagicDNS, the host integration mode, resolvers and split DNS routes");
  addBool(dnsStatus, "json", "output in JSON format");
  dnsStatus.action((o: { json?: boolean }, cmd: Command) => start(() => runDnsStatus(ctxOf(cmd), o.json === true)));

  program.command("nc").description("connect to a port of a node, stdin/stdout")
    .argument("<host>").argument("<port>")
    .action((host: string, port: string, _o: unknown, cmd: Command) => start(() => runNc(ctxOf(cmd), host, port)));

  // `lattice ssh [user@]host [args...]`: everything after the destination is ssh's (no
  // option parsing here, so `-L 8080:…` or a remote `ls -la` pass through as given).
  program.command("ssh").description("SSH to a node with host keys verified from the tailnet (runs the system ssh)")
    .argument("<[user@]host>").argument("[args...]")
    .allowUnknownOption().allowExcessArguments().helpOption(false)
    .action((_t: string, _a: string[], _o: unknown, cmd: Command) => start(() => runSsh(ctxOf(cmd), sshArgv)));

  program.command("bugreport").description("print a marker to quote in a bug report")
    .argument("[note]")
    .action((note: string | undefined, _o: unknown, cmd: Command) => start(() => runBugreport(ctxOf(cmd), note)));

  const version = program.command("version").description("print the version");
  addBool(version, "daemon", "also print the daemon's version");
  version.action((o: { daemon?: boolean }, cmd: Command) => start(() => runVersion(ctxOf(cmd), o.daemon === true)));

  // The raw words after "ssh" (the first positional word), before any flag normalisation.
  const sshAt = firstCommandIndex(argv);
  const sshArgv = sshAt >= 0 && argv[sshAt] === "ssh" ? argv.slice(sshAt + 1) : [];
  try {
    if (sshAt >= 0 && argv[sshAt] === "ssh") {
      // Only the global options before "ssh" go through commander.
      program.parse([...argv.slice(0, sshAt), "ssh", ...(sshArgv.length > 0 ? [sshArgv[0]!] : [])], { from: "user" });
      return await (pending as unknown as Promise<number>);
    }
    const longNames = new Set([program, ...program.commands].flatMap((c) => c.options.map((o) => (o.long ?? "").replace(/^--(no-)?/, ""))).filter((n) => n.length > 1));
    program.parse(normalizeGoFlags(argv, BOOL_FLAGS, longNames), { from: "user" });
    if (pending === null) {
      // `lattice` alone: usage, exit 2 (as Tailscale's CLI with no subcommand)
      program.outputHelp({ error: true });
      return 2;
    }
    exitCode = await (pending as Promise<number>);
  } catch (e) {
    exitCode = report(e, io);
  }
  return exitCode;
}

/** Index of the subcommand word in `argv` (after `--socket PATH` / `--socket=PATH`), -1 if none. */
function firstCommandIndex(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--socket") i++;
    else if (a.startsWith("--socket=")) continue;
    else if (a.startsWith("-")) return -1;
    else return i;
  }
  return -1;
}

/** Prints an error as the CLI does and returns its exit code. */
function report(e: unknown, io: CliIo): number {
  if (e instanceof CommanderError) {
    // commander printed its message already (help, version, unknown option, missing argument)
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof NotRunningStateError) {
    io.out(e.message + "\n");
    return e.exitCode;
  }
  if (e instanceof CliError) {
    io.err(`lattice: ${e.message}\n`);
    return e.exitCode;
  }
  io.err(`lattice: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}
