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
  /** The message without the position prefix. */
  readonly detail: string;
  /** Path of the offending field, e.g. `ssh[2].dst[0]` (undefined when not known). */
  readonly field: string | undefined;
  /** The offending value as written (undefined when not known). */
  readonly value: string | undefined;

  /**
   * Builds an error; the message is "line:column: field: "value": detail" (the parts
   * that are known).
   */
  constructor(code: PolicyErrorCode, detail: string, pos?: Pos, field?: string, value?: string) {
    const where = field === undefined ? "" : value === undefined ? `${field}: ` : `${field}: ${JSON.stringify(value)}: `;
    const text = where + detail;
    super(pos && pos.line > 0 ? `${pos.line}:${pos.column}: ${text}` : text);
    this.name = "PolicyError";
    this.code = code;
    this.line = pos?.line ?? 0;
    this.column = pos?.column ?? 0;
    this.detail = detail;
    this.field = field;
    this.value = value;
  }

  /**
   * The same error naming `field` and `value` (position kept, or `pos` when it had none);
   * an error that already names a field is returned unchanged.
   */
  withField(field: string, value: string, pos?: Pos): PolicyError {
    if (this.field !== undefined) return this;
    const at = this.line > 0 ? { line: this.line, column: this.column } : pos;
    return new PolicyError(this.code, this.detail, at, field, value);
  }
}

/** Runs `fn`; a PolicyError it throws without a field gets `field`, `value` and `pos`. */
export function atField<T>(field: string, value: string, pos: Pos, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PolicyError) throw e.withField(field, value, pos);
    throw e;
  }
}
