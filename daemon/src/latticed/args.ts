/**
 * Command line of latticed:
 * `latticed [--state DIR] [--socket PATH] [--port N] [--tun NAME] [--verbose N] [--operator USER] [--resolv-conf PATH]`
 * (defaults /var/lib/lattice, /var/run/lattice/latticed.sock, 41641, lattice0, 0, none,
 * /etc/resolv.conf).
 * Bad flags or values: a message naming the flag and value, exit 2.
 */
import { Command } from "commander";
import { checkIfname, parseCommand, type ArgsIo } from "../wg/args.js";

/** latticed's version (IPNVersion, /version). */
export const LATTICED_VERSION = "0.1.0";

/** Defaults. */
export const DEFAULTS = { state: "/var/lib/lattice", socket: "/var/run/lattice/latticed.sock", port: 41641, tun: "lattice0", verbose: 0, resolvConf: "/etc/resolv.conf" } as const;

/** Parsed options. */
export interface LatticedOptions {
  state: string;
  socket: string;
  port: number;
  tun: string;
  verbose: number;
  operator: string | null;
  /** The resolv.conf `--accept-dns` manages and MagicDNS reads upstreams from. */
  resolvConf: string;
}

/** What the command line asks for. */
export type LatticedCommand = { kind: "run"; opts: LatticedOptions } | { kind: "exit"; code: number };

/** Parses argv (without node and script). */
export function parseLatticedArgs(argv: readonly string[], io: ArgsIo): LatticedCommand {
  let result: LatticedCommand | null = null;
  const fail = (msg: string): void => {
    io.err(`latticed: ${msg}\n`);
    result = { kind: "exit", code: 2 };
  };
  const program = new Command("latticed")
    .description("Lattice node daemon: joins a tailnet (control client, WireGuard, packet filter) and serves the LocalAPI for `lattice`.")
    .option("--state <DIR>", "state directory (keys, prefs, last netmap; mode 0700)", DEFAULTS.state)
    .option("--socket <PATH>", "LocalAPI unix socket", DEFAULTS.socket)
    .option("--port <N>", "UDP port for WireGuard (0 = random)", String(DEFAULTS.port))
    .option("--tun <NAME>", "TUN interface name", DEFAULTS.tun)
    .option("--verbose <N>", "log verbosity: 0 info, 1 debug, 2 trace", String(DEFAULTS.verbose))
    .option("--operator <USER>", "local user allowed to change settings through the LocalAPI besides root")
    .option("--resolv-conf <PATH>", "resolv.conf read for upstream nameservers and managed with --accept-dns", DEFAULTS.resolvConf)
    .version(`latticed v${LATTICED_VERSION}`, "--version")
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError("(run latticed --help for usage)")
    .argument("[extra...]")
    .action((extra: string[], o: { state: string; socket: string; port: string; tun: string; verbose: string; operator?: string; resolvConf: string }) => {
      if (extra.length > 0) return fail(`unexpected argument ${JSON.stringify(extra[0])} (latticed takes flags only)`);
      if (!/^\d{1,5}$/.test(o.port) || Number(o.port) > 65535) return fail(`--port: a UDP port 0..65535 (got ${JSON.stringify(o.port)})`);
      if (!/^\d$/.test(o.verbose)) return fail(`--verbose: 0, 1 or 2 (got ${JSON.stringify(o.verbose)})`);
      const bad = checkIfname(o.tun);
      if (bad) return fail(`--tun: ${bad}`);
      if (o.state === "") return fail("--state: empty path");
      if (!o.resolvConf.startsWith("/")) return fail(`--resolv-conf: an absolute path (got ${JSON.stringify(o.resolvConf)})`);
      if (o.socket === "" || Buffer.byteLength(o.socket) > 107) return fail(`--socket: a path of 1..107 bytes (got ${JSON.stringify(o.socket)})`);
      if (o.operator !== undefined && !/^[a-z_][a-z0-9_.-]{0,31}\$?$|^\d+$/i.test(o.operator)) return fail(`--operator: a user name or uid (got ${JSON.stringify(o.operator)})`);
      result = { kind: "run", opts: { state: o.state, socket: o.socket, port: Number(o.port), tun: o.tun, verbose: Number(o.verbose), operator: o.operator ?? null, resolvConf: o.resolvConf } };
    });
  const code = parseCommand(program, argv);
  return code !== null ? { kind: "exit", code } : (result ?? { kind: "exit", code: 2 });
}
