/** Base class of @lattice/derp errors; `code` is stable. */
export class DerpError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "DerpError";
    this.code = code;
  }
}

/**
 * Why a peer's byte stream was rejected. Returned (not thrown) by the decoders; the
 * connection cores count it and close the connection.
 */
export type DerpProtocolErrorCode =
  | "ERR_DERP_FRAME_TOO_LARGE"
  | "ERR_DERP_BAD_FRAME" // a frame of a known type with the wrong size/content
  | "ERR_DERP_BAD_HANDSHAKE" // wrong first frame, bad magic, box that does not open, bad JSON
  | "ERR_DERP_FORBIDDEN" // a mesh-only frame from a client without the mesh key
  | "ERR_DERP_BUFFER_LIMIT"; // too many bytes buffered before the connection was admitted

export class DerpProtocolError extends DerpError {
  constructor(code: DerpProtocolErrorCode, message: string) {
    super(code, message);
    this.name = "DerpProtocolError";
  }
}

/** A caller passed a packet or key of the wrong size to an encoder. */
export class DerpEncodeError extends DerpError {
  constructor(message: string) {
    super("ERR_DERP_ENCODE", message);
    this.name = "DerpEncodeError";
  }
}
