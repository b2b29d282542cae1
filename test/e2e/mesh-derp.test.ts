// Issue 8 acceptance 4: two meshed `lattice-derp` relays, node A homed on relay 1, node B on
// relay 2, UDP between the nodes blocked: they still reach each other (through the mesh).
//
// How each node gets its home relay: the relays are two nodes of ONE DERP region (901, in the
// `--derp-map FILE` given to lattice-control, which runs with `--no-derp`), because meshing is
// what a region's nodes do — a client talks to a peer's home REGION, and only within a region
// do relays forward to each other (Tailscale's derp/README.md: "each node in the region is
// required to be meshed with every other node ... clients will reconnect to the next node in
// the region"). Clients use a region's nodes in order, so A lands on relay 1 (the first), and
// B's router refuses TCP to relay 1 (`REJECT --reject-with tcp-reset`, as a firewall would),
// so B lands on relay 2 (the next). B can still reach relay 1 by UDP (its STUN), so its
// netcheck sees the region. Latency-based choice (tc netem) would pick between REGIONS, which
// would not exercise the mesh at all. The relays' /debug/stats prove the path: packets were
// forwarded across the mesh link, and each relay has one home client.
// Needs root, iproute2, iptables, ping, curl and `pnpm exec tsc -b`.
import { afterAll, describe, expect, it } from "vitest";
import { Lab, until } from "./lib/lab.js";
import { buildNat } from "./lib/topology.js";
import {
  createAuthKey, createUser, ipv4Of, startControl, startNode, startRelay, up, writeDerpMap, writeMeshKey,
} from "./lib/programs.js";
import { expectIcmp, icmpPing, iperfTcp, waitIcmp, waitStatusRelay } from "./lib/checks.js";

interface RelayStats {
  derp: { homeClients: number; currentClients: number; packetsForwardedOut: number; packetsForwardedIn: number };
  mesh: Array<{ connected: boolean }>;
}

describe("item 4: two meshed lattice-derp relays, A homed on relay 1, B on relay 2, UDP blocked", () => {
  const lab = new Lab();
  afterAll(async () => {
    if (process.env["E2E_DUMP_LOGS"]) process.stderr.write(lab.logs(80) + "\n");
    await lab.close();
  });

  it("A and B reach each other through the mesh", async () => {
    const t = await buildNat(lab, { udpBlocked: true, relays: 2 });
    const keyFile = writeMeshKey(lab);
    const urls = t.ip.relays.map((ip) => `http://${ip}:80`);
    const relays = await Promise.all(t.ns.relays.map((ns, i) => startRelay(lab, { ns, ip: t.ip.relays[i]!, name: `derp${i + 1}`, mesh: { urls, keyFile } })));
    const stats = async (i: number): Promise<RelayStats> =>
      JSON.parse((await lab.must(["curl", "-sS", "-m", "5", "http://127.0.0.1:80/debug/stats"], { ns: t.ns.relays[i]! })).stdout) as RelayStats;
    for (const i of [0, 1]) await until(`relay ${i + 1} meshed`, async () => (await stats(i)).mesh.some((l) => l.connected), 15_000);
    await lab.must(["iptables", "-A", "FORWARD", "-p", "tcp", "-d", t.ip.relays[0]!, "-j", "REJECT", "--reject-with", "tcp-reset"], { ns: t.ns.rb });

    const derpMap = writeDerpMap(lab, "derpmap.json", [
      { id: 901, code: "lab", nodes: relays.map((r, i) => ({ name: `901${"ab"[i]}`, ip: r.ip, derpPort: r.derpPort, stunPort: r.stunPort })) },
    ]);
    const control = await startControl(lab, { ns: t.ns.pub, ip: t.ip.pub, args: ["--no-derp", "--derp-map", derpMap] });
    await createUser(control, "alice");
    const key = await createAuthKey(control, "alice");
    const [a, b] = await Promise.all([startNode(lab, { ns: t.ns.a, name: "a" }), startNode(lab, { ns: t.ns.b, name: "b" })]);
    const [sa, sb] = await Promise.all([up(a, control, key, [], ["b"]), up(b, control, key, [], ["a"])]);
    const aIp = ipv4Of(sa.Self!);
    const bIp = ipv4Of(sb.Self!);

    await until("each relay has one home client", async () => (await stats(0)).derp.homeClients === 1 && (await stats(1)).derp.homeClients === 1, 30_000, 300);
    await waitIcmp(lab, t.ns.a, bIp, 30_000);
    await expectIcmp(lab, t.ns.b, aIp, 3, true);
    expect(await waitStatusRelay(a, "b")).toMatch(/relay "lab"/);
    const mbits = await iperfTcp(lab, t.ns.b, bIp, t.ns.a, 2);
    process.stdout.write(`# item 4: iperf3 TCP a→b through two meshed relays: ${mbits.toFixed(1)} Mbit/s\n`);
    const [s1, s2] = [await stats(0), await stats(1)];
    process.stdout.write(`# relay 1: ${JSON.stringify(s1.derp)}\n# relay 2: ${JSON.stringify(s2.derp)}\n`);
    // A's packets for B went relay 1 → mesh → relay 2, and B's the other way.
    expect(s1.derp.packetsForwardedOut).toBeGreaterThan(0);
    expect(s2.derp.packetsForwardedOut).toBeGreaterThan(0);
  });
});
