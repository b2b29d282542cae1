// Self-test of the netns suites' ping check (test/netns/ping-check.sh): a reply that comes
// late is counted, a reply that never comes fails. Needs root and `pnpm build`.
import { describe, expect, it } from "vitest";
import { requireRoot, runScript } from "../netns/run-script.js";

const TIMEOUT_MS = 120_000;

describe("ping-check.sh (the netns suites' ping check)", () => {
  it(
    "tells late replies from lost ones",
    async () => {
      requireRoot();
      const result = await runScript("ping-check.sh", {}, TIMEOUT_MS);
      expect(result.failed, "checks that printed 'not ok'").toEqual([]);
      expect(result.plan, "the script must finish with a 1..N plan").toBeDefined();
      expect(result.passed.length).toBe(result.plan);
      expect(result.code, "exit status").toBe(0);
    },
    TIMEOUT_MS + 10_000,
  );
});
