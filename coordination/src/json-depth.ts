/**
 * Nesting limit for JSON/huJSON text read from users (DNS settings, policies). jsonc-parser
 * (and the policy parser over its tree) recurse once per level, so hostile text like
 * `[[[[…` a few hundred thousand deep would exhaust the stack: a RangeError, answered as a
 * 500. This scan is iterative (jsonc-parser's scanner; strings and comments are tokens, so
 * brackets inside them do not count) and runs before any parser.
 */
import { createScanner } from "jsonc-parser";

// jsonc-parser's SyntaxKind values (a const enum, not importable under verbatimModuleSyntax).
const OPEN_BRACE = 1;
const CLOSE_BRACE = 2;
const OPEN_BRACKET = 3;
const CLOSE_BRACKET = 4;
const EOF = 17;

/** A 1-based `line:column` of an offset in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split("\n").length, column: offset - before.lastIndexOf("\n") };
}

/**
 * The position of the first array/object opened deeper than `max` levels, or null when the
 * text stays within `max` (syntax errors are left to the parser).
 */
export function tooDeepAt(text: string, max: number): { line: number; column: number } | null {
  const sc = createScanner(text, false);
  let depth = 0;
  for (let t = sc.scan(); t !== EOF; t = sc.scan()) {
    if (t === OPEN_BRACE || t === OPEN_BRACKET) {
      if (++depth > max) return lineColumn(text, sc.getTokenOffset());
    } else if (t === CLOSE_BRACE || t === CLOSE_BRACKET) depth--;
  }
  return null;
}
