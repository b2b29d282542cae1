/** Errors raised for bad policy input. */

/** A position in the policy text (1-based line and column). */
export interface Pos {
  /** 1-based line. */
  line: number;
  /** 1-based column (UTF-16 code units). */
  column: number;
}

/** Stable error codes for {@link PolicyError}. */
export type PolicyErrorCode =
  | "syntax"
  | "unknown-field"
  | "type"
  | "invalid-value"
  | "unknown-reference"
  | "tests-failed"
  | "invalid-topology";

/** A policy that cannot be accepted: names a code, a position and the offending value. */
export class PolicyError extends Error {
  /** Stable machine-readable code. */
  readonly code: PolicyErrorCode;
  /** 1-based line of the offending value (0 when unknown). */
  readonly line: number;
  /** 1-based column of the offending value (0 when unknown). */
  readonly column: number;

  /** Builds an error; the message is prefixed with "line:column: ". */
  constructor(code: PolicyErrorCode, detail: string, pos?: Pos) {
    super(pos && pos.line > 0 ? `${pos.line}:${pos.column}: ${detail}` : detail);
    this.name = "PolicyError";
    this.code = code;
    this.line = pos?.line ?? 0;
    this.column = pos?.column ?? 0;
  }
}
