// SSH check mode with a real browser (issue 9, acceptance 5): real lattice-control, two real
// latticed in network namespaces — A (alice's laptop) and B (tag:server, `RunSSH`) — and a
// `check` rule. The stock OpenSSH client on A shows the banner with the approval URL; real
// Chromium (playwright-core) opens it, logs in as alice with the web login form and clicks
// Approve; the same ssh session then runs its command. Within checkPeriod a second ssh needs
// no check; with `checkPeriod: "always"` the next ssh asks again.
//
// The control server listens only inside the "ctl" namespace (10.77.0.1), so Chromium runs
// there: playwright launches a wrapper script (`ip netns exec <ctl> chromium "$@"`) as its
// executablePath; the pipe transport's fds 3/4 pass through `ip netns exec` unchanged.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { World, localApi, requireRoot, waitFor } from "./harness.js";

const CHROMIUM = process.env.LATTICE_CHROMIUM ?? "/usr/bin/chromium";
const BASE_OPTS = ["-o", "LogLevel=INFO", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"];

interface Ssh {
  out: () => string;
  err: () => string;
  done: Promise<number | null>;
  kill: () => void;
}

describe("SSH check mode approved in real Chromium (OpenSSH client → latticed --ssh)", () => {
  const w = new World();
  let browser: Browser | undefined;
  let ctl: Awaited<ReturnType<World["control"]>>;
  let a: { ns: string; lanIp: string };
  let ipB = "";
  let policyFile = "";
  const policy = (checkPeriod: string) =>
    JSON.stringify({
      tagOwners: { "tag:server": ["alice@"] },
      acls: [{ action: "accept", src: ["alice@"], dst: ["tag:server:22"] }],
      ssh: [{ action: "check", src: ["alice@"], dst: ["tag:server"], users: ["root"], checkPeriod }],
    });
  /** `ssh root@B CMD` from A, output collected as it arrives. */
  const ssh = (...cmd: string[]): Ssh => {
    const p = spawn("ip", ["netns", "exec", a.ns, "ssh", ...BASE_OPTS, `root@${ipB}`, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
    w.procs.push(p);
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const done = new Promise<number | null>((r) => p.on("close", (c) => r(c)));
    return { out: () => out, err: () => err, done, kill: () => p.kill("SIGKILL") };
  };

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await w.cleanup();
  });

  it("setup: A (alice) and B (tag:server, --ssh) join under a `check` rule for root (checkPeriod 12h); Chromium starts in the control's namespace", async () => {
    requireRoot();
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does`);
    w.lan();
    ctl = await w.control();
    ctl.admin("users", "create", "alice", "--password", "correct-horse-battery");
    policyFile = path.join(w.dir, "policy.hujson");
    fs.writeFileSync(policyFile, policy("12h"));
    ctl.admin("policy", "set", policyFile);
    const userKey = ctl.admin("keys", "create", "--user", "alice", "--preapproved");
    const serverKey = ctl.admin("keys", "create", "--user", "alice", "--preapproved", "--tags", "tag:server");
    a = w.nodeNs("a");
    const b = w.nodeNs("b");
    const da = w.latticed("a", a.ns);
    const db = w.latticed("b", b.ns);
    for (const d of [da, db]) await waitFor("LocalAPI up", 20_000, () => localApi(d.socket, "GET", "/localapi/v0/status").catch(() => null));
    expect((await localApi(da.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: userKey, Hostname: "laptop" })).status).toBe(200);
    expect((await localApi(db.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: serverKey, Hostname: "server", RunSSH: true })).status).toBe(200);
    const sb = await waitFor("B running", 30_000, async () => {
      const s = await localApi(db.socket, "GET", "/localapi/v0/status");
      return s.body.BackendState === "Running" && s.body.TailscaleIPs?.length ? s.body : null;
    });
    ipB = sb.TailscaleIPs[0];
    await waitFor("A sees B", 30_000, async () => {
      const s = await localApi(da.socket, "GET", "/localapi/v0/status");
      return Object.values((s.body.Peer ?? {}) as Record<string, any>).some((p) => p.TailscaleIPs?.includes(ipB));
    });
    const wrapper = path.join(w.dir, "chromium-in-ctl.sh");
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${w.ns("ctl")} ${CHROMIUM} "$@"\n`, { mode: 0o700 });
    browser = await chromium.launch({ executablePath: wrapper, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  }, 180_000);

  it("OpenSSH shows the check banner; Chromium logs in as alice on that URL and clicks Approve; the same session prints approved-ok; a second ssh within checkPeriod runs at once with no banner", async () => {
    requireRoot();
    const s = ssh("echo", "approved-ok");
    const url = await waitFor("the check banner with the URL", 30_000, () => /visit: (\S+)/.exec(s.err())?.[1]);
    expect(url).toMatch(new RegExp(`^${ctl.url}/ssh/check/\\S+$`));
    expect(s.err()).toContain("# Lattice SSH requires an additional check.");
    const page = await browser!.newPage();
    try {
      // Opening the check URL without a session leads to the login form.
      await page.goto(url);
      await page.waitForSelector("#username", { timeout: 15_000 });
      await page.fill("#username", "alice");
      await page.fill("#password", "correct-horse-battery");
      await Promise.all([page.waitForURL((u) => u.pathname === new URL(url).pathname, { timeout: 15_000 }), page.click("button[type=submit]")]);
      const text = (await page.textContent("body")) ?? "";
      expect(text).toMatch(/alice\S* on laptop wants to SSH as root to server/);
      await Promise.all([page.waitForLoadState("load"), page.click("button:has-text('Approve')")]);
      await waitFor("the page confirms the approval", 15_000, async () => ((await page.textContent("body")) ?? "").includes("approved"));
    } finally {
      await page.close();
    }
    expect(await s.done).toBe(0);
    expect(s.out()).toBe("approved-ok\n");
    const again = ssh("echo", "again-ok");
    expect(await again.done).toBe(0);
    expect(again.out()).toBe("again-ok\n");
    expect(again.err()).not.toContain("additional check");
  }, 120_000);

  it('checkPeriod "always": after the policy change, the next ssh shows the check banner again', async () => {
    requireRoot();
    fs.writeFileSync(policyFile, policy("always"));
    ctl.admin("policy", "set", policyFile);
    // Wait until B has the new policy: an ssh that is asked to check again.
    const url = await waitFor("a new check banner under checkPeriod always", 30_000, async () => {
      const s = ssh("echo", "should-not-run");
      const got = await Promise.race([
        waitFor("banner", 5_000, () => /visit: (\S+)/.exec(s.err())?.[1]).catch(() => null),
        s.done.then(() => null),
      ]);
      s.kill();
      await s.done;
      // No banner: B still had the 12h rule (the approval applied); try again.
      return got;
    });
    expect(url).toMatch(new RegExp(`^${ctl.url}/ssh/check/\\S+$`));
  }, 60_000);
});
