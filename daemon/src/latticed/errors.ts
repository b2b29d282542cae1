/**
 * latticed's one error class: a stable `code` (the LocalAPI error codes of
 * docs/localapi.md plus daemon-side ones) and an HTTP status for the LocalAPI.
 */

/** Stable error codes of latticed (LocalAPI codes first). */
export type LatticedErrorCode =
  | "bad_request"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "no_netmap"
  | "peer_not_found"
  | "timeout"
  | "control_error"
  | "needs_login"
  | "internal"
  | "state_insecure"
  | "state_corrupt"
  | "bad_args"
  | "tun_setup"
  | "router_setup"
  | "no_exit_nodes";

const STATUS: Record<LatticedErrorCode, number> = {
  bad_request: 400,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  no_netmap: 409,
  peer_not_found: 404,
  timeout: 504,
  control_error: 502,
  needs_login: 409,
  internal: 500,
  state_insecure: 500,
  state_corrupt: 500,
  bad_args: 400,
  tun_setup: 500,
  router_setup: 500,
  no_exit_nodes: 404,
};

/** A latticed failure with a stable code (and the LocalAPI status it maps to). */
export class LatticedError extends Error {
  readonly code: LatticedErrorCode;
  /** HTTP status when answered on the LocalAPI. */
  readonly status: number;
  constructor(code: LatticedErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LatticedError";
    this.code = code;
    this.status = STATUS[code];
  }
}
