/**
 * Typed errors of the coordination server: one hierarchy rooted at {@link ControlError},
 * each with a stable snake_case `code` and the HTTP status it is answered with — by the
 * REST API and web pages (`{"error": {"code", "message"}}`) and by the node API on the
 * Noise channel (`{"error": message, "code"}`, nodeapi/http.ts). Status 500 means a bug:
 * logged and answered without details.
 */

/** Base class: `code` is stable (snake_case), `status` is the HTTP status to answer with. */
export class ControlError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  /** HTTP status for the REST API. */
  readonly status: number;
  constructor(code: string, message: string, status = 400) {
    super(message);
    this.name = "ControlError";
    this.code = code;
    this.status = status;
  }
}

/** Something named does not exist (404). */
export class NotFoundError extends ControlError {
  constructor(what: string, which: string) {
    super(`${what}_not_found`, `${what} ${JSON.stringify(which)} not found`, 404);
    this.name = "NotFoundError";
  }
}

/** The request conflicts with existing state (409). */
export class ConflictError extends ControlError {
  constructor(code: string, message: string) {
    super(code, message, 409);
    this.name = "ConflictError";
  }
}

/** Bad input from a user: flags, config, request bodies (400). */
export class ValidationError extends ControlError {
  constructor(message: string, code = "invalid_input") {
    super(code, message, 400);
    this.name = "ValidationError";
  }
}

/** An auth key was rejected (expired, revoked, used, unknown) (401). */
export class AuthKeyError extends ControlError {
  constructor(code: "auth_key_invalid" | "auth_key_expired" | "auth_key_revoked" | "auth_key_used", message: string) {
    super(code, message, 401);
    this.name = "AuthKeyError";
  }
}

/** Credentials were missing or wrong (401). */
export class UnauthorizedError extends ControlError {
  constructor(message = "missing or invalid credentials", code = "unauthorized") {
    super(code, message, 401);
    this.name = "UnauthorizedError";
  }
}

/** The caller is known but its role does not allow the operation (403). */
export class ForbiddenError extends ControlError {
  constructor(message: string, code = "forbidden") {
    super(code, message, 403);
    this.name = "ForbiddenError";
  }
}

/** The policy was rejected by the policy compiler (400, message names line:column). */
export class PolicyRejectedError extends ControlError {
  /**
   * @param line 1-based line of the problem in the policy text (0: unknown)
   * @param column 1-based column (0: unknown)
   */
  constructor(
    message: string,
    readonly line = 0,
    readonly column = 0,
  ) {
    super("policy_invalid", message, 400);
    this.name = "PolicyRejectedError";
  }
}

/** Stable codes of {@link StartupError}: which kind of resource could not be opened. */
export type StartupErrorCode =
  /** A config file or a file a setting names (e.g. --derp-map) is unreadable or invalid. */
  | "config_invalid"
  /** The database (file, directory or PostgreSQL server) cannot be opened or migrated. */
  | "db_unavailable"
  /** Another lattice-control holds the database's lock (one server per database). */
  | "db_locked"
  /** A secret-holding file is readable or writable by group/others. */
  | "insecure_permissions"
  /** The admin socket's path or directory is unusable. */
  | "socket_unavailable"
  /** A live server already answers on the admin socket. */
  | "socket_in_use"
  /** The HTTP(S) listen address cannot be bound. */
  | "listen_failed"
  /** TLS certificate or key unreadable, malformed or not matching. */
  | "tls_invalid"
  /** OIDC discovery at the issuer failed. */
  | "oidc_unavailable";

/**
 * `serve` could not open a resource it was asked to open. The message is one line,
 * `<setting> <value>: <reason>`, e.g. `--db /proc/nope/a.db: cannot create directory
 * /proc/nope: no such file or directory (ENOENT)`; the program prints it and exits 1.
 */
export class StartupError extends ControlError {
  constructor(
    code: StartupErrorCode,
    /** The setting as its command-line flag, e.g. `--db`. */
    readonly setting: string,
    /** The setting's value (passwords in URLs redacted). */
    readonly value: string,
    reason: string,
  ) {
    super(code, `${setting} ${value}: ${reason}`, 500);
    this.name = "StartupError";
  }
}

/**
 * Describes a Node system error as `what it means (CODE)`, e.g. `no such file or directory
 * (ENOENT)`, without the syscall and path Node appends (callers name the path themselves).
 */
export function describeSystemError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  // "ENOENT: no such file or directory, mkdir '/x'" or "listen EADDRINUSE: address already in use 127.0.0.1:80"
  const m = typeof err?.code === "string" ? new RegExp(`^(?:[a-z]+ )?${err.code}: ([^,]+)`).exec(err.message ?? "") : null;
  if (m) return `${m[1]} (${err.code})`;
  return err?.code && !String(err.message).includes(err.code) ? `${err.message} (${err.code})` : String(err?.message ?? e);
}

/**
 * A request over a configured limit (429 too many, 413 too large); `code` names the limit,
 * the message names the limit's value and the setting that raises it.
 */
export class LimitError extends ControlError {
  constructor(code: string, message: string, status: 413 | 429 = 429) {
    super(code, message, status);
    this.name = "LimitError";
  }
}

/**
 * The stored policy did not compile for the current tailnet (500-class: never caused by
 * a request). The node backend then cuts every node off (fail closed) until it compiles.
 */
export class PolicyCompileError extends ControlError {
  /** The policy version that failed. */
  readonly version: number;
  constructor(version: number, cause: unknown) {
    super(
      "policy_compile_failed",
      `policy version ${version} does not compile for the current tailnet (${cause instanceof Error ? cause.message : String(cause)}); every node is cut off (empty packet filter, no peers) until it compiles again`,
      500,
    );
    this.name = "PolicyCompileError";
    this.version = version;
    this.cause = cause;
  }
}
