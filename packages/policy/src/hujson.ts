/** huJSON (JSON with comments and trailing commas) parsing with positions. */
import { parseTree, printParseErrorCode, type Node, type ParseError } from "jsonc-parser";
import { PolicyError, type Pos } from "./errors.js";

/** Maps string offsets to 1-based line:column. */
export class LineIndex {
  private readonly starts: number[] = [0];

  /** Indexes the line starts of `text`. */
  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }

  /** The position of an offset. */
  pos(offset: number): Pos {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo] + 1 };
  }
}

/** Parses huJSON into a jsonc-parser tree; throws PolicyError(syntax) with the position. */
export function parseHuJSON(text: string, lines: LineIndex): Node {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  if (errors.length > 0 || !root) {
    const e = errors[0];
    const pos = lines.pos(e ? e.offset : 0);
    throw new PolicyError("syntax", `invalid huJSON: ${e ? printParseErrorCode(e.error) : "empty document"}`, pos);
  }
  return root;
}
