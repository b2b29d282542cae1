/**
 * A filter rule (or local address) entry the filter could not use. Never thrown for
 * netmap input: `Filter.fromRules` skips the entry (so it can only narrow what is
 * allowed, never widen it) and lists these in `Filter.errors`. `code` is stable.
 */
export class FilterRuleError extends Error {
  readonly code = "ERR_FILTER_RULE";
  /** Where: `rules[2].DstPorts[0].IP`, `localAddrs[1]`. */
  readonly field: string;
  /** The offending value as received. */
  readonly value: unknown;
  constructor(field: string, value: unknown, message: string) {
    super(`${field}: ${message} (value ${JSON.stringify(value)})`);
    this.name = "FilterRuleError";
    this.field = field;
    this.value = value;
  }
}
