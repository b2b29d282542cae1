// Real-peer WireGuard checks (test/netns/netns.sh) with lattice-wg on both ends of every
// tunnel. Needs root, iproute2, wireguard-tools, iperf3, ncat, iptables and `pnpm build`.
//   LATTICE_WG_CMD        command under test (default: node daemon/bin/lattice-wg.js)
//   LATTICE_WG_BASELINE=1 also run the script with the reference (wireguard-go) on both ends
//   WG_REFERENCE_CMD      the reference (default: wireguard-go)
import { describe, expect, it } from "vitest";
import { expectEveryCheckPassed } from "./expect-checks.js";
import { latticeWgCommand, referenceWgCommand, requireRoot, runScript, type ScriptResult } from "../netns/run-script.js";

const TIMEOUT_MS = 840_000;

function expectAllChecksPassed(result: ScriptResult): void {
  expectEveryCheckPassed(result);
  expect(result.passed.length).toBeGreaterThan(50);
}

describe("netns.sh (WireGuard's namespace checks)", () => {
  it(
    "passes with lattice-wg on both ends",
    async () => {
      requireRoot();
      const cmd = latticeWgCommand();
      expectAllChecksPassed(await runScript("netns.sh", { WG_IMPL_1: cmd, WG_IMPL_2: cmd }, TIMEOUT_MS));
    },
    TIMEOUT_MS + 30_000,
  );

  if (process.env["LATTICE_WG_BASELINE"]) {
    it(
      "passes with the reference implementation on both ends (baseline)",
      async () => {
        requireRoot();
        const cmd = referenceWgCommand();
        expectAllChecksPassed(await runScript("netns.sh", { WG_IMPL_1: cmd, WG_IMPL_2: cmd }, TIMEOUT_MS));
      },
      TIMEOUT_MS + 30_000,
    );
  }
});
