// Interface lifecycle of lattice-wg against the reference WireGuard (wireguard-go) in network
// namespaces (test/netns/lifecycle.sh): a packet while the link is down does not end the daemon,
// the device follows down/up and a move to another namespace and back, and the first packet after
// a private-key change is answered within 1 s. The script prints the time to the first reply
// after the key change for lattice-wg and, for comparison, for wireguard-go as A.
// Needs root, iproute2, wireguard-tools, iputils-ping and `pnpm build`.
//   LATTICE_WG_CMD, WG_REFERENCE_CMD: see netns.test.ts
import { describe, expect, it } from "vitest";
import { expectEveryCheckPassed } from "./expect-checks.js";
import { latticeWgCommand, referenceWgCommand, requireRoot, runScript } from "../netns/run-script.js";

const TIMEOUT_MS = 300_000;

describe("lifecycle.sh (link down/up, namespace move, key change; lattice-wg with wireguard-go)", () => {
  it(
    "survives packets while down, follows the link, answers at once after a key change",
    async () => {
      requireRoot();
      const env = { WG_IMPL_A: latticeWgCommand(), WG_IMPL_B: referenceWgCommand() };
      const result = await runScript("lifecycle.sh", env, TIMEOUT_MS);
      expectEveryCheckPassed(result);
      const ours = result.passed.filter((n) => !n.startsWith("[reference]"));
      expect(ours.filter((n) => n.startsWith("[link]")).length, "link checks of lattice-wg ran").toBe(2);
      expect(ours.filter((n) => n.startsWith("[key change]")).length, "key-change check of lattice-wg ran").toBe(1);
    },
    TIMEOUT_MS + 30_000,
  );
});
