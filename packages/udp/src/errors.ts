/** Stable error codes of @lattice/udp. */
export type UdpErrorCode =
  /** The native addon is not built (run `pnpm -r run build:native`). */
  | "ERR_UDP_ADDON_MISSING"
  /** An option of {@link openUdp} is invalid; the message names the field. */
  | "ERR_UDP_BAD_OPTION"
  /** Creating, configuring (SO_MARK) or binding the socket failed. */
  | "ERR_UDP_OPEN"
  /** A datagram handed to a send method is invalid; the message names its index and field. */
  | "ERR_UDP_BAD_DATAGRAM"
  /** Receiving failed (reported through `onError`; the socket keeps running). */
  | "ERR_UDP_RECV";

/** An error of the UDP layer, with a stable `code` and the OS errno name if any. */
export class UdpError extends Error {
  /** Stable error code. */
  readonly code: UdpErrorCode;
  /** The OS errno name (e.g. "EADDRINUSE", "EPERM") when the error came from a syscall. */
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
  const err = e as { code?: unknown; message?: unknown } | null;
  const sys = typeof err?.code === "string" ? err.code : undefined;
  const msg = typeof err?.message === "string" ? err.message : String(e);
  return new UdpError(code, `${what}: ${msg}`, sys, e);
}
