/** Base class of the errors @lattice/crypto throws; `code` is stable. */
export class CryptoError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "CryptoError";
    this.code = code;
  }
}

/** An X25519 computation produced the all-zero shared secret (low-order or zero public key). */
export class LowOrderPointError extends CryptoError {
  constructor() {
    super("ERR_X25519_LOW_ORDER", "X25519 produced an all-zero shared secret (low-order public key)");
    this.name = "LowOrderPointError";
  }
}

/** A key, nonce or buffer had the wrong length. */
export class InvalidLengthError extends CryptoError {
  constructor(what: string, expected: number | string, got: number) {
    super("ERR_INVALID_LENGTH", `${what} must be ${expected} bytes, got ${got}`);
    this.name = "InvalidLengthError";
  }
}

/** Throws InvalidLengthError unless `b.length === n`. */
export function checkLength(what: string, b: Uint8Array, n: number): void {
  if (b.length !== n) throw new InvalidLengthError(what, n, b.length);
}
