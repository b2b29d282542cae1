// Self-test of the netns suites' ping check (test/netns/ping-check.sh): a reply that comes
// late is counted, a reply that never comes fails. Needs root and `pnpm build`.
import { describe, it } from "vitest";
import { expectEveryCheckPassed } from "./expect-checks.js";
import { requireRoot, runScript } from "../netns/run-script.js";

const TIMEOUT_MS = 120_000;

describe("ping-check.sh (the netns suites' ping check)", () => {
  it(
    "tells late replies from lost ones",
    async () => {
      requireRoot();
      const result = await runScript("ping-check.sh", {}, TIMEOUT_MS);
      expectEveryCheckPassed(result);
    },
    TIMEOUT_MS + 10_000,
  );
});
