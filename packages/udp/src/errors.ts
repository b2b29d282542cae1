/** Stable error codes of @lattice/udp. */
export type UdpErrorCode =
  /** The native addon (built from packages/tun) is missing: run `pnpm -r run build:native`. */
  | "ERR_UDP_ADDON_MISSING"
  /** Creating or binding the socket failed (EADDRINUSE, EACCES, ...; see `syscallCode`). */
  | "ERR_UDP_BIND"
  /** Reading the socket failed for good. */
  | "ERR_UDP_READ"
  /** The socket was used after close(). */
  | "ERR_CLOSED";

/** An error of the UDP socket, with a stable `code` and the OS errno name if any. */
export class UdpError extends Error {
  /** Stable error code. */
  readonly code: UdpErrorCode;
  /** The OS errno name (e.g. "EADDRINUSE"), when the error came from a syscall. */
  readonly syscallCode: string | undefined;

  /** Creates the error; `cause` is the underlying native error, if any. */
  constructor(code: UdpErrorCode, message: string, syscallCode?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "UdpError";
    this.code = code;
    this.syscallCode = syscallCode;
  }
}

/** Wraps a native (errno-carrying) error as a UdpError with the given code. */
export function wrapNative(code: UdpErrorCode, what: string, e: unknown): UdpError {
  const err = e as { code?: unknown; message?: unknown };
  const sys = typeof err?.code === "string" ? err.code : undefined;
  const msg = typeof err?.message === "string" ? err.message : String(e);
  return new UdpError(code, `${what}: ${msg}`, sys, e);
}
