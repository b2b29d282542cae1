// Issue 10 acceptance 2–4 (subnet router, exit node, bad flags), end to end through the
// real `lattice` and `lattice-control` CLIs (topology: lib/topology.ts `buildRoutes`):
//   2. R advertises 10.77.0.0/24 (LAN host H): before approval A cannot reach H; after
//      approval and a policy allowing it A reaches H by ping and TCP and H sees R's address
//      (SNAT), or A's with `--snat-subnet-routes=false`; a policy denying H:80 is enforced
//      at R (H never sees the SYN; R's filter counts the drop).
//   3. E advertises an exit node and is approved; A with `--exit-node=e` reaches the
//      "internet" host I that only E routes to, and I sees E's address; control and DERP
//      stay reachable (A reconnects after a control restart and a change at control reaches
//      it; with UDP A<->E blocked the tunnel runs over DERP and still carries A's internet
//      traffic); `--exit-node=` restores
//      `ip route show table all`, `ip rule` and `ip -6 rule` byte for byte; A's LAN host L
//      is reachable only with `--exit-node-allow-lan-access`.
//   4. bad CIDRs, an unknown exit node, a peer that is no exit node: a clear error naming
//      flag and value, nonzero exit, prefs unchanged (and the daemon refuses the same).
// The items run in this order on one tailnet. ip_forward is turned on in r and e only.
// Needs root, iproute2, iptables, ncat, ping, curl and `pnpm exec tsc -b`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, until, type LabProc } from "./lib/lab.js";
import { buildRoutes, type RoutesTopology } from "./lib/topology.js";
import {
  createAuthKey, createUser, ipv4Of, localApi, peerNamed, setPolicy, startControl, startNode, up,
  type Control, type LatticeNode,
} from "./lib/programs.js";
import { expectIcmp, statusLine, waitIcmp, waitStatusRelay, withinBudget } from "./lib/checks.js";

const TAILNET = `"100.64.0.0/10:*", "fd7a:115c:a1e0::/48:*"`;
/** Tailnet traffic only: the subnet and the internet are not allowed. */
const POLICY_TAILNET = `{ "acls": [ { "action": "accept", "src": ["*"], "dst": [${TAILNET}] } ] }`;
/** Tailnet + the whole subnet + the internet through exit nodes. */
const POLICY_ALL = `{ "acls": [ { "action": "accept", "src": ["*"], "dst": [${TAILNET}, "10.77.0.0/24:*", "autogroup:internet:*"] } ] }`;
/** Tailnet + only port 22 of the subnet. */
const POLICY_SUBNET_22 = `{ "acls": [ { "action": "accept", "src": ["*"], "dst": [${TAILNET}, "10.77.0.0/24:22", "autogroup:internet:*"] } ] }`;

const lab = new Lab();
let t: RoutesTopology;
let control: Control;
let a: LatticeNode;
let r: LatticeNode;
let e: LatticeNode;
let aIp: string;

/** `ncat -lkv PORT`: its log names the source of every connection ("Connection from IP:port"). */
async function verboseListener(ns: string, name: string, port: number): Promise<LabProc> {
  const p = lab.spawn(name, ns, ["ncat", "-lkv", "-p", String(port)]);
  await until(`${name} listening`, async () => (await lab.run(ns, ["ss", "-H", "-tln", `sport = :${port}`])).stdout.includes(`:${port}`), 5000, 50);
  return p;
}

/** Sends a fresh token from `ns` to ip:port; the source address the listener logged for it, or null. */
async function tcpSource(ns: string, ip: string, port: number, listener: LabProc, timeoutMs = 2000): Promise<string | null> {
  const token = `tok-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
  const before = listener.log().length;
  const res = await lab.run(ns, ["bash", "-c", `echo ${token} | ncat -w ${timeoutMs}ms --send-only ${ip} ${port}`], { timeoutMs: timeoutMs + 5000 });
  if (res.code !== 0) return null;
  try {
    await until(`${token} at ${listener.name}`, () => listener.log().slice(before).includes(token), 2000, 50);
  } catch {
    return null;
  }
  const m = /Connection from \[?([0-9a-f.:]+?)\]?:\d+/.exec(listener.log().slice(before));
  return m ? m[1]! : "?";
}

/** What `--exit-node=` must restore: every routing table and the v4/v6 rules. */
async function routingSnapshot(ns: string): Promise<string> {
  const out: string[] = [];
  for (const argv of [["ip", "route", "show", "table", "all"], ["ip", "-6", "route", "show", "table", "all"], ["ip", "rule"], ["ip", "-6", "rule"]]) {
    const res = await lab.must(argv, { ns });
    out.push(`## ${argv.join(" ")}\n${res.stdout}`);
  }
  return out.join("");
}

/** GET /localapi/v0/prefs of a node, parsed. */
async function prefsOf(node: LatticeNode): Promise<Record<string, unknown>> {
  const res = await localApi(lab, node, "GET", "/localapi/v0/prefs");
  expect(res.status).toBe(200);
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** Sum of latticed_filter_packets_total{direction="in",verdict="drop"} of a node. */
async function filterDrops(node: LatticeNode): Promise<number> {
  const res = await localApi(lab, node, "GET", "/localapi/v0/metrics");
  let sum = 0;
  for (const m of res.body.matchAll(/^latticed_filter_packets_total\{([^}]*)\} (\d+)$/gm)) {
    if (m[1]!.includes(`direction="in"`) && m[1]!.includes(`verdict="drop"`)) sum += Number(m[2]);
  }
  return sum;
}

/** Packets counted by H's rule `iptables -A INPUT -p tcp --dport 80 --syn` (no target: counts only). */
async function synsAtH80(): Promise<number> {
  const res = await lab.must(["iptables", "-L", "INPUT", "-v", "-n", "-x"], { ns: t.ns.h });
  const line = res.stdout.split("\n").find((l) => /tcp dpt:80 flags:0x17\/0x02/.test(l));
  if (line === undefined) throw new Error(`no SYN counter rule in H:\n${res.stdout}`);
  return Number(line.trim().split(/\s+/)[0]);
}

async function nodeKeyOf(node: LatticeNode): Promise<string> {
  return (await node.status()).Self!.PublicKey;
}

beforeAll(async () => {
  t = await buildRoutes(lab);
  control = await startControl(lab, { ns: t.ns.ctl, ip: t.ip.ctl });
  await createUser(control, "alice");
  const key = await createAuthKey(control, "alice");
  await setPolicy(lab, control, POLICY_TAILNET);
  [a, r, e] = await Promise.all([
    startNode(lab, { ns: t.ns.a, name: "a" }),
    startNode(lab, { ns: t.ns.r, name: "r" }),
    startNode(lab, { ns: t.ns.e, name: "e" }),
  ]);
  const [sa] = await Promise.all([
    up(a, control, key, ["--accept-routes"], ["r", "e"]),
    up(r, control, key, ["--advertise-routes=10.77.0.0/24"], ["a"]),
    up(e, control, key, ["--advertise-exit-node"], ["a"]),
  ]);
  aIp = ipv4Of(sa.Self!);
}, 180_000);
afterAll(async () => {
  if (process.env["E2E_DUMP_LOGS"]) process.stderr.write(lab.logs(80) + "\n");
  await lab.close();
});

describe("item 2: subnet router", () => {
  it("advertised, not approved: pending at control, no route on A, H unreachable; R warns that IP forwarding is off", async () => {
    expect(await prefsOf(r)).toMatchObject({ AdvertiseRoutes: ["10.77.0.0/24"], NoSNAT: false });
    const routes = JSON.parse(await control.adminOk(["nodes", "routes", await nodeKeyOf(r), "--json"])) as { advertisedRoutes: string[]; approvedRoutes: string[] };
    expect(routes.advertisedRoutes).toEqual(["10.77.0.0/24"]);
    expect(routes.approvedRoutes).toEqual([]);
    const health = await until("r's forwarding warning", async () => {
      const h = ((await r.status()).Health ?? []).find((l) => l.startsWith("IP forwarding is disabled"));
      return h ?? false;
    }, 20_000, 300);
    expect(health).toContain("sysctl -w net.ipv4.ip_forward=1");
    expect((await r.latticeOk(["status"]))).toContain("# Health check:");
    await lab.must(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"], { ns: t.ns.r });
    expect(peerNamed(await a.status(), "r")!.PrimaryRoutes ?? []).toEqual([]);
    await expectIcmp(lab, t.ns.a, t.ip.h, 2, false);
  });

  it("approved but not allowed by the policy: still unreachable; allowed: A reaches H by ping and TCP, H sees R's LAN address (SNAT)", async () => {
    await control.adminOk(["nodes", "approve-routes", await nodeKeyOf(r), t.subnet]);
    await until("a sees r's approved route", async () => (peerNamed(await a.status(), "r")?.PrimaryRoutes ?? []).includes(t.subnet) || undefined, 5000, 300).catch(() => undefined);
    await expectIcmp(lab, t.ns.a, t.ip.h, 2, false);

    await setPolicy(lab, control, POLICY_ALL);
    await waitIcmp(lab, t.ns.a, t.ip.h, 20_000);
    await expectIcmp(lab, t.ns.a, t.ip.h, 3, true);
    expect(peerNamed(await a.status(), "r")!.PrimaryRoutes).toEqual([t.subnet]);
    expect((await lab.must(["ip", "route", "show", "table", "52"], { ns: t.ns.a })).stdout).toMatch(/^10\.77\.0\.0\/24 dev lattice0\b/m);
    const h8080 = await verboseListener(t.ns.h, "ncat-h-8080", 8080);
    expect(await tcpSource(t.ns.a, t.ip.h, 8080, h8080)).toBe(t.ip.rLan);
    await h8080.stop();
  });

  it("--snat-subnet-routes=false: H sees A's tailnet address (H routes 100.64.0.0/10 back via R); =true: R's again", async () => {
    const h8081 = await verboseListener(t.ns.h, "ncat-h-8081", 8081);
    await r.latticeOk(["set", "--snat-subnet-routes=false"]);
    expect(await prefsOf(r)).toMatchObject({ NoSNAT: true });
    await lab.must(["ip", "route", "add", "100.64.0.0/10", "via", t.ip.rLan], { ns: t.ns.h });
    const noSnat = await until("H sees A's tailnet address", async () => {
      const src = await tcpSource(t.ns.a, t.ip.h, 8081, h8081, 1500);
      return src === aIp ? src : false;
    }, 15_000, 300);
    expect(noSnat).toBe(aIp);
    await r.latticeOk(["set", "--snat-subnet-routes"]);
    await until("H sees R's address again", async () => (await tcpSource(t.ns.a, t.ip.h, 8081, h8081, 1500)) === t.ip.rLan, 15_000, 300);
    await lab.must(["ip", "route", "del", "100.64.0.0/10", "via", t.ip.rLan], { ns: t.ns.h });
    await h8081.stop();
  });

  it("a policy allowing only H:22 is enforced at R: A→H:22 passes, A→H:80 never reaches H (its SYN counter stays 0) and R's filter counts drops", async () => {
    const h22 = await verboseListener(t.ns.h, "ncat-h-22", 22);
    const h80 = await verboseListener(t.ns.h, "ncat-h-80", 80);
    await lab.must(["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "80", "--syn"], { ns: t.ns.h });
    expect(await tcpSource(t.ns.a, t.ip.h, 80, h80)).toBe(t.ip.rLan); // open under POLICY_ALL
    try {
      await setPolicy(lab, control, POLICY_SUBNET_22);
      const closed = await withinBudget(10_000, true, async () => (await tcpSource(t.ns.a, t.ip.h, 80, h80, 500)) === null);
      expect(closed, "A→H:80 still open 10 s after the policy denied it").not.toBeNull();
      // Measure from here: H's counter and R's drops around connection attempts to :80.
      await lab.must(["iptables", "-Z", "INPUT"], { ns: t.ns.h });
      const dropsBefore = await filterDrops(r);
      expect(await tcpSource(t.ns.a, t.ip.h, 80, h80, 1500)).toBeNull();
      expect(await tcpSource(t.ns.a, t.ip.h, 80, h80, 1500)).toBeNull();
      expect(await synsAtH80()).toBe(0);
      expect(await filterDrops(r)).toBeGreaterThan(dropsBefore);
      expect(await tcpSource(t.ns.a, t.ip.h, 22, h22)).toBe(t.ip.rLan);
    } finally {
      await setPolicy(lab, control, POLICY_ALL);
    }
    await until("A→H:80 open again", async () => (await tcpSource(t.ns.a, t.ip.h, 80, h80, 500)) !== null, 15_000, 200);
    await Promise.all([h22.stop(), h80.stop()]);
  });
});

describe("item 3: exit node", () => {
  let before = "";

  it("E approved as exit node: A lists it, the suggestion names it, status says `offers exit node`; I is unreachable", async () => {
    await setPolicy(lab, control, POLICY_ALL); // (item 2 left it so; set here for `-t "item 3"` runs)
    await lab.must(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"], { ns: t.ns.e });
    expect(await prefsOf(e)).toMatchObject({ AdvertiseRoutes: ["0.0.0.0/0", "::/0"] });
    // (the other spelling of approval: `nodes routes NODE --approve`; the subnet used approve-routes)
    const shown = await control.adminOk(["nodes", "routes", await nodeKeyOf(e), "--approve", "0.0.0.0/0"]);
    expect(shown).toMatch(/^exit node \(0\.0\.0\.0\/0, ::\/0\)\s+approved$/m);
    const list = await until("e in `lattice exit-node list`", async () => {
      const out = await a.latticeOk(["exit-node", "list"]);
      return /^\S+\s+e\.\S+\s+-\s+-\s+-$/m.test(out) ? out : false;
    }, 20_000, 300);
    expect(list.split("\n")[0]).toMatch(/^IP\s+HOSTNAME\s+COUNTRY\s+CITY\s+STATUS$/);
    expect(list).not.toMatch(/\sr\./); // the subnet router offers no exit node
    const suggest = await a.latticeOk(["exit-node", "suggest"]);
    expect(suggest).toMatch(/^Suggested exit node: e\.\S+[^.]\nTo accept this suggestion, use `lattice set --exit-node=e\.\S+`\.\n$/);
    expect(await statusLine(a, "e")).toMatch(/offers exit node/);
    expect(peerNamed(await a.status(), "e")!.ExitNodeOption).toBe(true);
    await expectIcmp(lab, t.ns.a, t.ip.i, 2, false);
    before = await routingSnapshot(t.ns.a);
  });

  it("--exit-node=e: A reaches I by ping and TCP and I sees E's address; status and prefs say so", async () => {
    await a.latticeOk(["set", "--exit-node=e"]);
    await waitIcmp(lab, t.ns.a, t.ip.i, 20_000);
    await expectIcmp(lab, t.ns.a, t.ip.i, 3, true);
    const i80 = await verboseListener(t.ns.i, "ncat-i-80", 80);
    expect(await tcpSource(t.ns.a, t.ip.i, 80, i80)).toBe(t.ip.eWan);
    await i80.stop();
    const st = await a.status();
    const ePeer = peerNamed(st, "e")!;
    expect(ePeer.ExitNode).toBe(true);
    expect(st.ExitNodeStatus?.ID).toBe(ePeer.ID);
    expect(await statusLine(a, "e")).toMatch(/; exit node;|idle; exit node/);
    expect(await prefsOf(a)).toMatchObject({ ExitNodeID: ePeer.ID });
    expect((await a.latticeOk(["exit-node", "list"]))).toMatch(/^\S+\s+e\.\S+\s+-\s+-\s+selected$/m);
    const rules = (await lab.must(["ip", "rule"], { ns: t.ns.a })).stdout;
    for (const re of [/^5210:.*fwmark 0x80000\/0xff0000 lookup main/m, /^5230:.*fwmark 0x80000\/0xff0000 lookup default/m,
      /^5250:.*fwmark 0x80000\/0xff0000 unreachable/m, /^5270:.*lookup 52\b/m]) expect(rules).toMatch(re);
    expect((await lab.must(["ip", "route", "show", "table", "52"], { ns: t.ns.a })).stdout).toMatch(/^default dev lattice0\b/m);
    expect(await routingSnapshot(t.ns.a)).not.toBe(before);
  });

  it("control and DERP stay reachable through the exit-node routing: after a control restart A reconnects and a rename reaches it; with UDP A↔E blocked, DERP carries A's internet traffic", async () => {
    // A control restart makes A dial control and DERP anew while the exit-node routing is in place.
    await control.restart();
    await until("a reconnected to control (no control Health line)", async () => !((await a.status()).Health ?? []).some((h) => /control/i.test(h)), 60_000, 500);
    const rKey = await nodeKeyOf(r);
    await control.adminOk(["nodes", "rename", rKey, "rr"]);
    await until("the rename reaches a", async () => peerNamed(await a.status(), "r")?.DNSName.startsWith("rr.") || undefined, 30_000, 300);
    await control.adminOk(["nodes", "rename", rKey, "r"]);
    expect(((await a.status()).Health ?? []).filter((h) => /control/i.test(h))).toEqual([]);
    const block = async (op: "-A" | "-D"): Promise<void> => {
      await lab.must(["iptables", op, "OUTPUT", "-p", "udp", "-d", t.ip.e, "-j", "DROP"], { ns: t.ns.a });
      await lab.must(["iptables", op, "INPUT", "-p", "udp", "-s", t.ip.e, "-j", "DROP"], { ns: t.ns.a });
    };
    await block("-A");
    try {
      await until("A→I over DERP", async () => {
        await lab.run(t.ns.a, ["ping", "-c", "1", "-W", "1", t.ip.i]);
        const l = await statusLine(a, "e");
        return l !== undefined && /\brelay "/.test(l) && !/\bdirect\b/.test(l);
      }, 60_000, 300);
      await waitStatusRelay(a, "e");
      await waitIcmp(lab, t.ns.a, t.ip.i, 20_000);
    } finally {
      await block("-D");
    }
  });

  it("A's LAN host L: not reached through the exit node; reached with --exit-node-allow-lan-access; not again without", async () => {
    await expectIcmp(lab, t.ns.a, t.ip.l, 2, false);
    await a.latticeOk(["set", "--exit-node-allow-lan-access"]);
    await waitIcmp(lab, t.ns.a, t.ip.l, 10_000);
    await expectIcmp(lab, t.ns.a, t.ip.i, 2, true); // still through E
    await a.latticeOk(["set", "--exit-node-allow-lan-access=false"]);
    await until("L unreachable again", async () => !(await lab.run(t.ns.a, ["ping", "-c", "1", "-W", "1", t.ip.l])).stdout.includes(" 0% packet loss"), 10_000, 300);
    await expectIcmp(lab, t.ns.a, t.ip.l, 2, false);
  });

  it("--exit-node= restores `ip route show table all`, `ip rule` and `ip -6 rule` byte for byte; I unreachable again", async () => {
    await a.latticeOk(["set", "--exit-node="]);
    const after = await until("routing back to the snapshot", async () => {
      const now = await routingSnapshot(t.ns.a);
      return now === before ? now : false;
    }, 10_000, 300).catch(async () => routingSnapshot(t.ns.a));
    expect(after).toBe(before);
    await expectIcmp(lab, t.ns.a, t.ip.i, 2, false);
    const st = await a.status();
    expect(st.ExitNodeStatus ?? undefined).toBeUndefined();
    expect(peerNamed(st, "e")!.ExitNode).toBe(false);
    expect(await prefsOf(a)).toMatchObject({ ExitNodeID: "", ExitNodeIP: "" });
  });

  it("crash recovery: `kill -9 latticed` with an exit node selected, restart → the exit node works again; then `--exit-node=` restores the snapshot", async () => {
    await a.latticeOk(["set", "--exit-node=e"]);
    await waitIcmp(lab, t.ns.a, t.ip.i, 20_000);
    await a.kill9();
    await a.start();
    await until("a Running again", async () => (await a.status()).BackendState === "Running", 30_000, 300);
    await waitIcmp(lab, t.ns.a, t.ip.i, 30_000);
    expect((await lab.must(["ip", "rule"], { ns: t.ns.a })).stdout.match(/^5270:/gm)).toHaveLength(1);
    await a.latticeOk(["set", "--exit-node="]);
    // The restarted daemon made a new TUN, which the kernel gave a new IPv6 link-local
    // address: that line differs by nature (and may sort elsewhere), everything else must be
    // as before. So: that address masked, and each section compared as a sorted set of lines.
    const ll = (text: string): string =>
      text.replace(/fe80::[0-9a-f:]+ dev lattice0/g, "fe80::LINK-LOCAL dev lattice0")
        .split(/(?=^## )/m)
        .map((sec) => { const [head, ...rest] = sec.split("\n"); return [head, ...rest.sort()].join("\n"); })
        .join("\n");
    const after = await until("routing back to the snapshot", async () => {
      const now = ll(await routingSnapshot(t.ns.a));
      return now === ll(before) ? now : false;
    }, 15_000, 300).catch(async () => ll(await routingSnapshot(t.ns.a)));
    expect(after).toBe(ll(before));
  });
});

describe("down removes the routing state (ROUTES-CONTRACT: everything removed on down)", () => {
  it("`lattice down` on R and E: no lattice-forward / lattice-postrouting chains; on A: no 52xx rules, table 52 empty", async () => {
    await Promise.all([r.latticeOk(["down"]), e.latticeOk(["down"]), a.latticeOk(["down"])]);
    for (const ns of [t.ns.r, t.ns.e]) {
      const rules = await until("chains gone", async () => {
        const out = (await lab.must(["iptables-save"], { ns })).stdout + (await lab.must(["ip6tables-save"], { ns })).stdout;
        return out.includes("lattice-") ? false : out;
      }, 10_000, 300).catch(async () => (await lab.must(["iptables-save"], { ns })).stdout);
      expect(rules).not.toContain("lattice-");
    }
    for (const v of [[], ["-6"]]) {
      const rules = (await lab.must(["ip", ...v, "rule"], { ns: t.ns.a })).stdout;
      expect(rules).not.toMatch(/^52\d0:/m);
      expect((await lab.run(t.ns.a, ["ip", ...v, "route", "show", "table", "52"])).stdout).toBe("");
    }
    await Promise.all([r.latticeOk(["up"]), e.latticeOk(["up"]), a.latticeOk(["up"])]);
    await until("a Running with r again", async () => ((await a.status()).BackendState === "Running" && peerNamed(await a.status(), "r") !== undefined) || undefined, 30_000, 300);
  });
});

describe("item 4: bad flags", () => {
  it("bad CIDRs: exit 2 naming flag, value and the canonical prefix; prefs unchanged; the daemon refuses them too", async () => {
    const prefs = await prefsOf(r);
    const cases: Array<[string[], string]> = [
      [["set", "--advertise-routes=10.77.0.1/24"], 'lattice: invalid value "10.77.0.1/24" for --advertise-routes: 10.77.0.1/24 has non-address bits set; expected 10.77.0.0/24\n'],
      [["set", "--advertise-routes=10.77.0.0/24,10.78.0.0/33"], 'lattice: invalid value "10.77.0.0/24,10.78.0.0/33" for --advertise-routes: "10.78.0.0/33" is not a valid IP address or CIDR prefix\n'],
      [["set", "--advertise-routes=0.0.0.0/0"], 'lattice: invalid value "0.0.0.0/0" for --advertise-routes: 0.0.0.0/0 advertised without its IPv6 counterpart; also advertise ::/0 (or use --advertise-exit-node)\n'],
      [["up", "--advertise-routes=fd00::1/64"], 'lattice: invalid value "fd00::1/64" for --advertise-routes: fd00::1/64 has non-address bits set; expected fd00::/64\n'],
    ];
    for (const [args, msg] of cases) {
      const res = await r.lattice(args);
      expect({ code: res.code, stderr: res.stderr, stdout: res.stdout }, args.join(" ")).toEqual({ code: 2, stderr: msg, stdout: "" });
    }
    expect(await prefsOf(r)).toEqual(prefs);
    const raw = await localApi(lab, r, "PATCH", "/localapi/v0/prefs", { AdvertiseRoutes: ["10.77.0.0/24", "10.0.0.1/24"] });
    expect(raw.status).toBe(400);
    expect(JSON.parse(raw.body)).toMatchObject({ code: "bad_request" });
    expect((JSON.parse(raw.body) as { error: string }).error).toContain('AdvertiseRoutes[1]: "10.0.0.1/24" has non-address bits set; expected 10.0.0.0/24');
    const half = await localApi(lab, r, "PATCH", "/localapi/v0/prefs", { AdvertiseRoutes: ["::/0"] });
    expect(half.status).toBe(400);
    expect(await prefsOf(r)).toEqual(prefs);
  });

  it("unknown exit node, a peer that is no exit node, this node itself: exit 2 with the reason; prefs unchanged; the daemon refuses a non-exit IP", async () => {
    const prefs = await prefsOf(a);
    const rIp = ipv4Of(peerNamed(await a.status(), "r")!);
    const cases: Array<[string, string]> = [
      ["nope", 'lattice: invalid value "nope" for --exit-node: no peer with that name or IP\n'],
      ["100.64.255.254", 'lattice: invalid value "100.64.255.254" for --exit-node: no peer with that name or IP\n'],
      ["r", 'lattice: invalid value "r" for --exit-node: peer "r" does not offer an exit node\n'],
      [rIp, `lattice: invalid value "${rIp}" for --exit-node: peer "r" does not offer an exit node\n`],
      ["a", 'lattice: invalid value "a" for --exit-node: cannot use this node as its own exit node\n'],
    ];
    for (const [value, msg] of cases) {
      const res = await a.lattice(["set", `--exit-node=${value}`]);
      expect({ code: res.code, stderr: res.stderr }, value).toEqual({ code: 2, stderr: msg });
    }
    expect(await prefsOf(a)).toEqual(prefs);
    const raw = await localApi(lab, a, "PATCH", "/localapi/v0/prefs", { ExitNodeIP: rIp });
    expect(raw.status).toBe(400);
    expect((JSON.parse(raw.body) as { error: string }).error).toContain(`ExitNodeIP: ${rIp} is not a peer offering an exit node`);
    expect(await prefsOf(a)).toEqual(prefs);
  });
});
