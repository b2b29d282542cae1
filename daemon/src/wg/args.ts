/**
 * Command line of lattice-wg, a drop-in for `wireguard-go [-f|--foreground] IFNAME`,
 * parsed with commander.
 */
import { Command, CommanderError } from "commander";

/** The program's version string. */
export const LATTICE_WG_VERSION = "0.1.0";

/** What the command line asks for. */
export type WgCommand =
  | { readonly kind: "run"; readonly ifname: string; readonly foreground: boolean }
  | { readonly kind: "exit"; readonly code: number };

/** Where parse output goes (injected for tests). */
export interface ArgsIo {
  /** Normal output (help, version). */
  out(s: string): void;
  /** Error output. */
  err(s: string): void;
}

/** Interface names the kernel accepts: 1–15 bytes, no '/', ':' or whitespace, not "." or "..". */
export function checkIfname(name: string): string | null {
  if (name.length === 0) return "interface name is empty";
  if (Buffer.byteLength(name) > 15) return `interface name "${name}" is longer than 15 bytes`;
  if (/[/:\s]/.test(name)) return `interface name "${name}" contains '/', ':' or whitespace`;
  if (name === "." || name === "..") return `interface name "${name}" is not allowed`;
  return null;
}

/**
 * Parses argv (without node and script). Help → exit 0; version → exit 0; a bad flag,
 * missing or extra operand, or invalid name → message on err and exit 2.
 */
export function parseArgs(argv: readonly string[], io: ArgsIo, env: NodeJS.ProcessEnv = {}): WgCommand {
  let result: WgCommand | null = null;
  const program = new Command("lattice-wg")
    .description(
      "Userspace WireGuard daemon (drop-in for wireguard-go): creates TUN interface IFNAME and the UAPI " +
        "socket /var/run/wireguard/IFNAME.sock, to be configured with `wg`.",
    )
    .addHelpText(
      "after",
      "\nEnvironment:\n  LOG_LEVEL=debug|info|error|silent  log verbosity (default error); when set, a daemonized\n" +
        "                                     process keeps logging to this stderr\n" +
        "  WG_PROCESS_FOREGROUND=1            same as --foreground",
    )
    .usage("[-f|--foreground] IFNAME")
    .argument("<IFNAME>", "name of the interface to create (at most 15 bytes)")
    .option("-f, --foreground", "stay in the foreground instead of daemonizing")
    .version(`lattice-wg v${LATTICE_WG_VERSION}\n\nUserspace WireGuard daemon (Lattice) for ${process.platform}-${process.arch}.`, "-v, --version")
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError("(run lattice-wg --help for usage)")
    .action((ifname: string, opts: { foreground?: boolean }) => {
      const bad = checkIfname(ifname);
      if (bad) {
        io.err(`lattice-wg: ${bad}\n`);
        result = { kind: "exit", code: 2 };
        return;
      }
      result = { kind: "run", ifname, foreground: opts.foreground === true || env.WG_PROCESS_FOREGROUND === "1" };
    });
  const code = parseCommand(program, argv);
  return code !== null ? { kind: "exit", code } : (result ?? { kind: "exit", code: 2 });
}

/**
 * Runs commander on `argv` (user arguments) with exitOverride set. Returns null when the
 * action ran, else the exit code: 0 for --help/--version, 2 for a usage error (commander
 * has printed its message). Other errors are rethrown.
 */
export function parseCommand(program: Command, argv: readonly string[]): number | null {
  try {
    program.parse(argv as string[], { from: "user" });
    return null;
  } catch (e) {
    if (e instanceof CommanderError) {
      const ok = e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help";
      return ok ? 0 : 2;
    }
    throw e;
  }
}
