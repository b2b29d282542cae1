/** Typed errors of lattice-derp; `code` is stable. */
export class RelayError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "RelayError";
    this.code = code;
  }
}

/** A bad command-line flag or file it names; the message names the flag and the value. */
export class FlagError extends RelayError {
  constructor(flag: string, value: string, why: string) {
    super("ERR_FLAG", `${flag} ${JSON.stringify(value)}: ${why}`);
    this.name = "FlagError";
  }
}
