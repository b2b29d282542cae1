/**
 * Typed errors of the `lattice` CLI. `code` is stable; `exitCode` is what the process exits
 * with: 2 for bad command-line input (like Go's flag package and Tailscale's CLI), 1 for
 * everything else. main.ts prints every error as `lattice: <message>` on stderr.
 */
export class CliError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(code: string, message: string, exitCode = 1) {
    super(message);
    this.name = "CliError";
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Bad command-line input: the message names the flag (or argument) and the value. Exit 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super("ERR_USAGE", message, 2);
    this.name = "UsageError";
  }
}

/** A flag whose value does not parse: `invalid value "x" for --timeout: <why>`. Exit 2. */
export class FlagValueError extends UsageError {
  constructor(flag: string, value: string, why: string) {
    super(`invalid value ${JSON.stringify(value)} for ${flag}: ${why}`);
    this.name = "FlagValueError";
  }
}

/**
 * The daemon's socket is missing or refuses connections (Tailscale's wording for
 * tailscaled, adapted). Exit 1.
 */
export class DaemonNotRunningError extends CliError {
  readonly socketPath: string;
  constructor(socketPath: string) {
    super("ERR_DAEMON_DOWN", "failed to connect to local latticed; it doesn't appear to be running (sudo systemctl start latticed ?)");
    this.name = "DaemonNotRunningError";
    this.socketPath = socketPath;
  }
}

/**
 * A non-2xx LocalAPI answer `{"error","code"}` (docs/localapi.md "Errors"); `apiCode` is the
 * daemon's code (`bad_request`, `peer_not_found`, `timeout`, ...), `status` the HTTP status.
 */
export class LocalApiError extends CliError {
  readonly apiCode: string;
  readonly status: number;
  constructor(status: number, apiCode: string, message: string) {
    super("ERR_LOCALAPI", message);
    this.name = "LocalApiError";
    this.apiCode = apiCode;
    this.status = status;
  }
}

/**
 * The daemon is not in a state the command can work in (Stopped, NeedsLogin,
 * NeedsMachineAuth). The message goes to stdout as Tailscale does, exit 1.
 */
export class NotRunningStateError extends CliError {
  constructor(description: string) {
    super("ERR_STATE", description);
    this.name = "NotRunningStateError";
  }
}
