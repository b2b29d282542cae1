// Issue 8 acceptance, behind NAT (topology: lib/topology.ts buildNat — each node behind its own
// MASQUERADE router, lattice-control with its embedded DERP + STUN in the "public" namespace):
//   2. the nodes connect via DERP first and upgrade to a direct path by hole punching
//      (`lattice ping --until-direct` succeeds; status shows direct) — and when the direct
//      path dies (UDP between the routers dropped), traffic falls back to DERP
//   3. all UDP between the nodes dropped from the start: traffic flows over DERP (status
//      shows relay); TCP through the tunnel (iperf3) works
// Needs root, iproute2, iptables, iperf3, ping and `pnpm exec tsc -b`.
import { afterAll, describe, expect, it } from "vitest";
import { Lab, until } from "./lib/lab.js";
import { buildNat, setUdpBlocked, type NatTopology } from "./lib/topology.js";
import { createAuthKey, createUser, ipv4Of, peerNamed, startControl, startNode, up, type Control, type LatticeNode } from "./lib/programs.js";
import { expectIcmp, icmpPing, iperfTcp, parsePongs, waitIcmp, waitStatusDirect, waitStatusRelay } from "./lib/checks.js";

interface Tailnet {
  t: NatTopology;
  control: Control;
  a: LatticeNode;
  b: LatticeNode;
  aIp: string;
  bIp: string;
}

/** NAT topology, control in pub, nodes a and b up (Running, each other's peer). */
async function natTailnet(lab: Lab, udpBlocked: boolean): Promise<Tailnet> {
  const t = await buildNat(lab, { udpBlocked });
  const control = await startControl(lab, { ns: t.ns.pub, ip: t.ip.pub });
  await createUser(control, "alice");
  const key = await createAuthKey(control, "alice");
  const [a, b] = await Promise.all([startNode(lab, { ns: t.ns.a, name: "a" }), startNode(lab, { ns: t.ns.b, name: "b" })]);
  const [sa, sb] = await Promise.all([up(a, control, key, [], ["b"]), up(b, control, key, [], ["a"])]);
  return { t, control, a, b, aIp: ipv4Of(sa.Self!), bIp: ipv4Of(sb.Self!) };
}

const re = (s: string): string => s.replaceAll(".", "\\.");

describe("item 2: each node behind its own NAT router", () => {
  const lab = new Lab();
  let n: Tailnet;
  afterAll(async () => {
    if (process.env["E2E_DUMP_LOGS"]) process.stderr.write(lab.logs(80) + "\n");
    await lab.close();
  });

  it("connects via DERP first, then `lattice ping --until-direct` upgrades to a hole-punched direct path; status shows direct", async () => {
    n = await natTailnet(lab, false);
    const ping = await n.a.lattice(["ping", "--until-direct", "-c", "30", "b"], { timeoutMs: 90_000 });
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    const pongs = parsePongs(ping.stdout);
    expect(pongs.length, ping.stdout).toBeGreaterThan(0);
    // First answer over the relay, last one from b's router's public address (the NAT mapping).
    expect(pongs[0]!.derp, ping.stdout).not.toBeNull();
    expect(pongs.at(-1)!.via).toMatch(new RegExp(`^${re(n.t.ip.rbWan)}:\\d+$`));
    // `status` names the path of active peers only (traffic in the last minutes, as
    // Tailscale's): send some first.
    await waitIcmp(lab, n.t.ns.a, n.bIp);
    const line = await waitStatusDirect(n.a, "b");
    expect(line).toMatch(new RegExp(`direct ${re(n.t.ip.rbWan)}:\\d+`));
    await expectIcmp(lab, n.t.ns.b, n.aIp, 3, true);
    await waitStatusDirect(n.b, "a");
    expect(peerNamed(await n.b.status(), "a")!.CurAddr).toMatch(new RegExp(`^${re(n.t.ip.raWan)}:\\d+$`));
  });

  it("when the direct path dies (UDP between the routers dropped), traffic falls back to DERP", async () => {
    // Precondition: the direct path of the test above (not vacuous when that one failed).
    await icmpPing(lab, n.t.ns.a, n.bIp, 1);
    await waitStatusDirect(n.a, "b", 5000);
    await setUdpBlocked(lab, n.t, true);
    // Keep traffic flowing so the path checks notice the loss.
    await until("pings pass again, over DERP", async () => (await icmpPing(lab, n.t.ns.a, n.bIp, 1)).ok && !(await n.a.status().then((s) => peerNamed(s, "b")!.CurAddr)), 60_000, 500);
    const line = await waitStatusRelay(n.a, "b", 30_000);
    expect(line).toMatch(/relay "[^"]+"/);
    await expectIcmp(lab, n.t.ns.a, n.bIp, 3, true);
  });
});

describe("item 3: all UDP between the nodes dropped", () => {
  const lab = new Lab();
  let n: Tailnet;
  afterAll(async () => {
    if (process.env["E2E_DUMP_LOGS"]) process.stderr.write(lab.logs(80) + "\n");
    await lab.close();
  });

  it("traffic flows over DERP (status shows relay) and TCP through the tunnel (iperf3) works", async () => {
    n = await natTailnet(lab, true);
    await waitIcmp(lab, n.t.ns.a, n.bIp, 30_000);
    await expectIcmp(lab, n.t.ns.b, n.aIp, 3, true);
    const line = await waitStatusRelay(n.a, "b");
    expect(line).not.toMatch(/direct/);
    expect(peerNamed(await n.a.status(), "b")!.CurAddr).toBe("");
    // `lattice ping` answers via DERP; --until-direct cannot succeed.
    const ping = await n.a.lattice(["ping", "-c", "3", "--until-direct=false", "b"], { timeoutMs: 60_000 });
    const pongs = parsePongs(ping.stdout);
    expect(pongs.length, ping.stdout + ping.stderr).toBeGreaterThan(0);
    for (const p of pongs) expect(p.derp, ping.stdout).not.toBeNull();
    const mbits = await iperfTcp(lab, n.t.ns.b, n.bIp, n.t.ns.a, 3);
    process.stdout.write(`# item 3: iperf3 TCP a→b over DERP: ${mbits.toFixed(1)} Mbit/s\n`);
    expect(mbits).toBeGreaterThan(0);
    await waitStatusRelay(n.a, "b"); // still relayed after the bulk transfer
  });
});
