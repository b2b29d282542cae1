// The e2e harness itself (test/e2e/lib): topologies route and NAT as documented, servers run
// and are reachable across the NAT, and everything a lab creates is gone afterwards — also
// when the test process exits without calling close(). Needs root, iproute2, iptables, curl.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, NS_PREFIX, sleep, sweepStaleLabs, until } from "./lib/lab.js";
import { buildLan, buildNat, setUdpBlocked, type NatTopology } from "./lib/topology.js";
import { repoRoot, startControl, startRelay, writeMeshKey, type Control, type Relay } from "./lib/programs.js";

const stunProbe = join(repoRoot, "test/e2e/tools/stun-probe.mjs");

function namespaces(): string[] {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => n !== "");
}

/** True while `pid` exists and is not a zombie (a killed child its parent has not reaped yet). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describe("LAN topology", () => {
  const lab = new Lab();
  afterAll(() => lab.close());

  it("ctl, a and b reach each other on one bridge", async () => {
    const t = await buildLan(lab);
    await lab.must(["ping", "-c", "1", "-W", "2", t.ip.b], { ns: t.ns.a });
    await lab.must(["ping", "-c", "1", "-W", "2", t.ip.ctl], { ns: t.ns.b });
  });
});

describe("NAT topology with control and two meshed lattice-derp relays", () => {
  const lab = new Lab();
  let t: NatTopology;
  let control: Control;
  let relays: Relay[];
  beforeAll(async () => {
    t = await buildNat(lab, { relays: 2 });
    control = await startControl(lab, { ns: t.ns.pub, ip: t.ip.pub });
    const keyFile = writeMeshKey(lab);
    const urls = t.ip.relays.map((ip) => `http://${ip}:80`);
    relays = await Promise.all(t.ns.relays.map((ns, i) => startRelay(lab, { ns, ip: t.ip.relays[i]!, name: `derp${i + 1}`, mesh: { urls, keyFile } })));
  });
  afterAll(() => lab.close());

  it("nodes behind the NAT reach control and both relays over TCP (/health, /derp/probe)", async () => {
    for (const ns of [t.ns.a, t.ns.b]) {
      const health = await lab.must(["curl", "-sS", "-m", "5", `${control.url}/health`], { ns });
      expect(health.stdout).toMatch(/"ok":\s*true/);
      for (const r of relays) {
        const probe = await lab.must(["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", `${r.url}/derp/probe`], { ns });
        expect(probe.stdout).toBe("200");
      }
    }
  });

  it("the relays are meshed (each one's /debug/stats shows a connected mesh link)", async () => {
    for (const [i, r] of relays.entries()) {
      await until(`${r.proc.name} mesh link`, async () => {
        const st = JSON.parse((await lab.must(["curl", "-sS", "-m", "5", "http://127.0.0.1:80/debug/stats"], { ns: t.ns.relays[i]! })).stdout) as { mesh: Array<{ connected: boolean }> };
        return st.mesh.filter((l) => l.connected).length === 1;
      }, 15_000);
    }
  });

  it("the routers masquerade with endpoint-independent mapping: one socket gets the same public address:port from both STUN servers", async () => {
    const out = await lab.must(["node", stunProbe, "41641", ...t.ip.relays.map((ip) => `${ip}:3478`)], { ns: t.ns.a });
    const answers = out.stdout.trim().split("\n").map((l) => JSON.parse(l) as { mapped?: string; error?: string });
    expect(answers).toHaveLength(2);
    expect(answers[0]!.mapped).toBe(`${t.ip.raWan}:41641`);
    expect(answers[1]!.mapped).toBe(answers[0]!.mapped);
  });

  /**
   * Whether a datagram from b reaches a through a hole a punched: a sends from PORT to
   * rbWan:PORT (rb drops it: nothing listens there, its firewall drops it), then b sends from
   * PORT to raWan:PORT, which ra lets in only as the reply to a's flow.
   */
  async function punchThrough(port: number): Promise<boolean> {
    const a = lab.spawn(`punch-a-${port}`, t.ns.a, ["bash", "-c", `(echo punch; sleep 4) | ncat -u -p ${port} ${t.ip.rbWan} ${port}`]);
    await sleep(300);
    const b = lab.spawn(`punch-b-${port}`, t.ns.b, ["bash", "-c", `(echo reply; sleep 4) | ncat -u -p ${port} ${t.ip.raWan} ${port}`]);
    const through = await until("b's datagram at a", () => a.log().includes("reply"), 3000, 50).then(() => true, () => false);
    await Promise.all([a.stop(), b.stop()]);
    expect(b.log()).not.toContain("punch"); // rb never let a's first datagram in
    return through;
  }

  it("filtering is endpoint-dependent: a node's mapped address is closed to the other side until the node sent to it (a punched hole)", async () => {
    // b sends to a's would-be mapping raWan:41700 before a sent anything: ra drops it.
    const listener = lab.spawn("ncat-listen-a", t.ns.a, ["ncat", "-u", "-l", "-p", "41700"]);
    await until("ncat listening in a", async () => (await lab.run(t.ns.a, ["ss", "-H", "-uln", "sport = :41700"])).stdout.includes("41700"), 5000, 50);
    await lab.must(["bash", "-c", `echo unsolicited | ncat -u --send-only -p 41700 ${t.ip.raWan} 41700`], { ns: t.ns.b });
    await sleep(500);
    await listener.stop();
    expect(listener.log()).not.toContain("unsolicited");
    expect(await punchThrough(41701)).toBe(true);
  });

  it("udpBlocked drops UDP between the routers (no punching) and keeps UDP to pub and the relays (STUN)", async () => {
    await setUdpBlocked(lab, t, true);
    try {
      expect(await punchThrough(41702)).toBe(false);
      const stun = await lab.must(["node", stunProbe, "41703", `${t.ip.relays[0]}:3478`], { ns: t.ns.a });
      expect(JSON.parse(stun.stdout).mapped).toBe(`${t.ip.raWan}:41703`);
    } finally {
      await setUdpBlocked(lab, t, false);
    }
    expect(await punchThrough(41704)).toBe(true);
  });
});

describe("cleanup", () => {
  it("close() kills the lab's processes and deletes its namespaces and scratch directory", async () => {
    const lab = new Lab();
    const ns = await lab.addNs("x");
    const p = lab.spawn("sleeper", ns, ["sleep", "600"]);
    // A process the lab did not spawn itself, but which runs in its namespace (a daemonizing program).
    execFileSync("ip", ["netns", "exec", ns, "bash", "-c", "sleep 600 </dev/null >/dev/null 2>&1 &"]);
    const inNs = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).trim().split("\n").map(Number);
    expect(inNs).toHaveLength(2);
    await lab.close();
    expect(namespaces().filter((n) => n.startsWith(lab.id))).toEqual([]);
    for (const pid of inNs) expect(alive(pid)).toBe(false);
    expect(p.running()).toBe(false);
    expect(() => readFileSync(join(lab.dir, "sleeper.log"))).toThrow();
  });

  it("a test process that exits without close() leaves nothing behind (the exit hook)", () => {
    // lab.ts compiled as-is into a scratch module and run by a plain node child that exits early.
    const dir = mkdtempSync(join(tmpdir(), "lte2e-hook-"));
    try {
      const src = readFileSync(join(repoRoot, "test/e2e/lib/lab.ts"), "utf8");
      const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
      writeFileSync(join(dir, "lab.mjs"), js);
      writeFileSync(
        join(dir, "child.mjs"),
        `import { Lab } from "./lab.mjs";
         const lab = new Lab();
         const ns = await lab.addNs("hook");
         const p = lab.spawn("sleeper", ns, ["sleep", "600"]);
         console.log(JSON.stringify({ ns, pid: p.pid, dir: lab.dir }));
         process.exit(3);`,
      );
      const r = spawnSync(process.execPath, [join(dir, "child.mjs")], { encoding: "utf8", timeout: 30_000 });
      expect(r.status).toBe(3);
      const { ns, pid, dir: labDir } = JSON.parse(r.stdout.trim()) as { ns: string; pid: number; dir: string };
      expect(namespaces()).not.toContain(ns);
      expect(alive(pid)).toBe(false);
      expect(() => readFileSync(join(labDir, "sleeper.log"))).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("namespaces left by a killed run (dead pid in the name) are swept; a live run's are not", () => {
    const dead = spawnSync("true").pid!;
    const stale = `${NS_PREFIX}-${dead}-0000-stale`;
    const live = `${NS_PREFIX}-${process.pid}-0000-live`;
    execFileSync("ip", ["netns", "add", stale]);
    execFileSync("ip", ["netns", "add", live]);
    try {
      expect(sweepStaleLabs()).toContain(stale);
      expect(namespaces()).not.toContain(stale);
      expect(namespaces()).toContain(live);
    } finally {
      spawnSync("ip", ["netns", "del", stale]);
      spawnSync("ip", ["netns", "del", live]);
    }
  });
});
