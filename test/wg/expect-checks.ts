// The assertion every netns script wrapper makes: the script ran to its plan, every
// planned check printed `ok`, nothing printed `not ok`, and it exited 0.
import { expect } from "vitest";
import type { ScriptResult } from "../netns/run-script.js";

/** Asserts that a check script passed completely. */
export function expectEveryCheckPassed(result: ScriptResult): void {
  expect(result.failed, "checks that printed 'not ok'").toEqual([]);
  expect(result.bailOut, "bail-out reason").toBeUndefined();
  expect(result.plan, "the script must finish with a 1..N plan").toBeDefined();
  expect(result.passed.length, "every planned check printed 'ok'").toBe(result.plan);
  expect(result.code, "exit status").toBe(0);
}
