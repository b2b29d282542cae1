import { describe, expect, it } from "vitest";
import { compilePolicy, parsePolicy } from "../src/index.js";
import { SYNTHETIC_POLICY, syntheticTopology } from "./synthetic.js";

// Correctness at scale. Speed is measured by coordination/bench (figures, not assertions):
// this test only prints the time it saw.

describe("compilePolicy at 10,000 nodes", () => {
  it("compiles a 10,000-node tailnet", () => {
    const topo = syntheticTopology(10_000);
    const policy = parsePolicy(SYNTHETIC_POLICY);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const out = compilePolicy(policy, topo);
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(`10,000 nodes: wall ${wall.toFixed(0)} ms, cpu ${cpuMs.toFixed(0)} ms`);
    // Spot checks: an admin device sees everyone; a db server accepts web on 5432.
    const admin = out["node0"];
    expect(Object.keys(admin.peers)).toHaveLength(9_999);
    const db = Object.entries(topo.nodes).find(([, n]) => n.tags?.[0] === "tag:db")![0];
    const web = Object.values(topo.nodes).find((n) => n.tags?.[0] === "tag:web")!;
    const webRule = out[db].packetFilter.find((r) => r.SrcIPs.includes(web.ipv4));
    expect(webRule?.DstPorts?.[0].Ports).toEqual({ First: 5432, Last: 5432 });
  }, 120_000);
});
