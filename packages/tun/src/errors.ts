/** Stable error codes of @lattice/tun. */
export type TunErrorCode =
  /** The native addon is not built (run `pnpm -r run build:native`). */
  | "ERR_TUN_ADDON_MISSING"
  /** Opening or configuring the TUN device failed (permission, bad name, busy). */
  | "ERR_TUN_OPEN"
  /** The interface was deleted (`ip link del`): reads fail with EBADFD/EIO. */
  | "ERR_TUN_GONE"
  /** Reading the TUN failed for another reason. */
  | "ERR_TUN_READ"
  /** Writing failed with an unrecoverable error. */
  | "ERR_TUN_WRITE"
  /** The object was used after close(). */
  | "ERR_CLOSED";

/** An error from the TUN layer (UDP errors are @lattice/udp's UdpError), with a stable `code` and the OS errno name if any. */
export class TunError extends Error {
  /** Stable error code. */
  readonly code: TunErrorCode;
  /** The OS errno name (e.g. "EBADFD", "EPERM"), when the error came from a syscall. */
  readonly syscallCode: string | undefined;

  /** Creates the error; `cause` is the underlying native error, if any. */
  constructor(code: TunErrorCode, message: string, syscallCode?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "TunError";
    this.code = code;
    this.syscallCode = syscallCode;
  }
}

/** Wraps a native (errno-carrying) error as a TunError with the given code. */
export function wrapNative(code: TunErrorCode, what: string, e: unknown): TunError {
  const err = e as { code?: unknown; message?: unknown };
  const sys = typeof err?.code === "string" ? err.code : undefined;
  const msg = typeof err?.message === "string" ? err.message : String(e);
  return new TunError(code, `${what}: ${msg}`, sys, e);
}
