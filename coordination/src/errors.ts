/** Typed errors of the coordination server, each with a stable `code` and an HTTP status. */

/** Base class: `code` is stable, `status` is the HTTP status the REST API answers with. */
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

/** The policy was rejected by the policy compiler (400, message names line:column). */
export class PolicyRejectedError extends ControlError {
  constructor(message: string) {
    super("policy_invalid", message, 400);
    this.name = "PolicyRejectedError";
  }
}
