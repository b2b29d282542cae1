// Interoperability of lattice-wg with the reference WireGuard (wireguard-go) in network
// namespaces (test/netns/interop.sh): every two-peer check of netns.sh with lattice-wg as wg1
// and as wg2, each side initiating, and a rekey after REKEY_AFTER_TIME (real time, ~130 s)
// with each side as the initiator. Needs root and the tools of netns.test.ts.
//   LATTICE_WG_CMD, WG_REFERENCE_CMD, LATTICE_WG_BASELINE=1: see netns.test.ts
import { describe, expect, it } from "vitest";
import { expectEveryCheckPassed } from "./expect-checks.js";
import { latticeWgCommand, referenceWgCommand, requireRoot, runScript, type ScriptResult } from "../netns/run-script.js";

const TIMEOUT_MS = 840_000;

function expectAllChecksPassed(result: ScriptResult): void {
  expectEveryCheckPassed(result);
  expect(result.passed.some((name) => name.startsWith("[rekey]")), "rekey checks ran").toBe(true);
}

describe("interop.sh (lattice-wg with wireguard-go)", () => {
  it(
    "interoperates in both directions and across a rekey",
    async () => {
      requireRoot();
      const env = { WG_IMPL_A: latticeWgCommand(), WG_IMPL_B: referenceWgCommand() };
      expectAllChecksPassed(await runScript("interop.sh", env, TIMEOUT_MS));
    },
    TIMEOUT_MS + 30_000,
  );

  if (process.env["LATTICE_WG_BASELINE"]) {
    it(
      "the reference interoperates with itself (baseline)",
      async () => {
        requireRoot();
        const cmd = referenceWgCommand();
        expectAllChecksPassed(await runScript("interop.sh", { WG_IMPL_A: cmd, WG_IMPL_B: cmd }, TIMEOUT_MS));
      },
      TIMEOUT_MS + 30_000,
    );
  }
});
