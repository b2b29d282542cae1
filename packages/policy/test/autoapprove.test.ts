/**
 * Route auto-approval is the server's step, not the compiler's (issue 7 A5): the compiler
 * reads the topology's approved routes as the state; `applyAutoApprovers` /
 * `autoApprovedRoutes` are what the server (and the corpus harness) run when routes are
 * advertised or the policy changes.
 */
import { describe, expect, it } from "vitest";
import { applyAutoApprovers, autoApprovedRoutes, parsePolicy } from "../src/index.js";
import { TAILNET, TAG_OWNERS, compileOn } from "./tailnet.js";

const TOPO = structuredClone(TAILNET);
TOPO.nodes.router.routable_ips = ["10.33.0.0/16", "10.44.0.0/16"];
const POLICY = { autoApprovers: { routes: { "10.44.0.0/16": ["tag:router"] } }, acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }] };

describe("route auto-approval", () => {
  it("the compiler never approves on its own: a pending route stays pending", () => {
    const out = compileOn(POLICY, TOPO);
    expect(out.router.primaryRoutes).toEqual(["10.33.0.0/16"]);
    expect(out["alice-laptop"].peers.router).not.toContain("10.44.0.0/16");
  });

  it("autoApprovedRoutes gives the pending routes the policy approves; applyAutoApprovers the resulting state", () => {
    const policy = parsePolicy(JSON.stringify({ tagOwners: TAG_OWNERS, ...POLICY }));
    expect(autoApprovedRoutes(policy, TOPO.nodes.router, TOPO.users)).toEqual(["10.44.0.0/16"]);
    expect(autoApprovedRoutes(policy, TOPO.nodes.server1, TOPO.users)).toEqual([]);
    const after = applyAutoApprovers(policy, TOPO);
    expect(after.nodes.router.approved_routes).toEqual(["10.33.0.0/16", "10.44.0.0/16"]);
    expect(compileOn(POLICY, after).router.primaryRoutes).toEqual(["10.33.0.0/16", "10.44.0.0/16"]);
  });
});
