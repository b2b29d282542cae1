/**
 * Issue 11, acceptance 1–3: the admin console driven in real Chromium (Debian's
 * /usr/bin/chromium through playwright-core) against the real server on SQLite, step by
 * step as an admin would: log in, create a tagged reusable pre-approved key and read it
 * once, register a node with it and see it online, disable its key expiry, approve a
 * pending machine, save a policy with a syntax error (error at line:column, edit kept),
 * fix it, add an SSH rule in check mode through the form (comments kept), preview
 * "alice → tag:server:22", find every change in the audit log; then a member sees no
 * change buttons and a forged POST gets 403. Every page is screenshotted at 1280×900 and
 * 390×844, checked for overflow and with axe-core.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { startServer, TestNode, waitFor, type ServerProc } from "./harness.js";
import { checkPage } from "./browser/page-checks.js";

const CHROMIUM = process.env.LATTICE_CHROMIUM ?? "/usr/bin/chromium";

const POLICY = `// Test policy: its comments must survive every console edit.
{
  "tagOwners": {
    "tag:server": ["alice@"], // servers belong to alice
  },
  "acls": [
    // rule 1: servers talk among themselves
    { "action": "accept", "src": ["tag:server"], "dst": ["tag:server:*"] },
    // rule 2: alice administers the servers over SSH
    { "action": "accept", "src": ["alice@"], "dst": ["tag:server:22"] },
  ],
}
`;

describe("admin console in Chromium (issue 11)", () => {
  let s: ServerProc;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  const nodes: TestNode[] = [];
  const streams: AsyncIterator<unknown>[] = [];
  const cspErrors: string[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does`);
    s = await startServer();
    expect((await s.cli(["users", "create", "alice", "--password-stdin"], "alice-password\n")).code).toBe(0);
    expect((await s.cli(["users", "create", "bob", "--password-stdin"], "bob-password\n")).code).toBe(0);
    const pol = `${s.dir}/policy.hujson`;
    (await import("node:fs")).writeFileSync(pol, POLICY);
    expect((await s.cli(["policy", "set", pol])).code).toBe(0);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await admin.newPage();
    page.on("dialog", (d) => void d.accept());
    page.on("console", (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text());
    });
  }, 60_000);

  afterAll(async () => {
    for (const it of streams) await it.return?.().catch(() => {});
    for (const n of nodes) n.close();
    await browser?.close();
    await s?.stop();
  });

  const login = async (p: Page, user: string, password: string) => {
    await p.goto(`${s.url}/admin`);
    expect(p.url()).toContain("/login?next=");
    await p.fill("#username", user);
    await p.fill("#password", password);
    await Promise.all([p.waitForURL(/\/admin\/machines/), p.click("button[type=submit]")]);
  };

  it("logs in and shows the navigation with Tailscale's section names", async () => {
    await login(page, "alice", "alice-password");
    const nav = await page.locator("header nav a").allTextContents();
    expect(nav).toEqual(["Machines", "Users", "Access controls", "DNS", "Logs", "Settings"]);
    const res = await page.request.get(`${s.url}/admin/machines`);
    const csp = res.headers()["content-security-policy"]!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers()["x-frame-options"]).toBe("DENY");
    problems.push(...(await checkPage(page, "machines-empty")));
  });

  let authKey = "";
  it("creates a tagged, reusable, pre-approved key and shows it exactly once", async () => {
    await page.click("text=Settings");
    await page.check("input[name=reusable]");
    await page.check("input[name=preapproved]");
    await page.fill("#k-tags", "tag:server");
    await page.fill("#k-expiry", "30");
    await page.click("text=Generate key");
    authKey = await page.inputValue("#new-key");
    expect(authKey).toMatch(/^lkey-[0-9a-f]{12}-/);
    expect(await page.locator("button[data-copy=new-key]").isVisible()).toBe(true);
    problems.push(...(await checkPage(page, "settings-key-created")));
    await page.goto(`${s.url}/admin/settings`);
    const html = await page.content();
    expect(html).not.toContain(authKey);
    expect(html).toContain(authKey.split("-")[1]!); // the prefix is listed
    expect(await page.locator("table").first().innerText()).toMatch(/alice@[\s\S]*reusable[\s\S]*pre-approved/);
    problems.push(...(await checkPage(page, "settings")));
  });

  it("a node registering with the key appears online on Machines; its key expiry can be disabled", async () => {
    const n = await new TestNode(s.url, "web-1").connect();
    nodes.push(n);
    expect((await n.register({ Auth: { AuthKey: authKey } } as never)).MachineAuthorized).toBe(true);
    const it = n.map()[Symbol.asyncIterator]();
    streams.push(it);
    await it.next();
    await waitFor(async () => {
      await page.goto(`${s.url}/admin/machines?q=web-1`);
      return (await page.locator("tbody tr").first().innerText()).includes("online");
    });
    const row = await page.locator("tbody tr").first().innerText();
    expect(row).toContain("web-1.lattice.internal");
    expect(row).toContain("tag:server");
    problems.push(...(await checkPage(page, "machines")));
    await page.click("text=Details");
    await page.click("button:has-text('Disable key expiry')");
    await page.waitForURL(/done=disable-expiry/);
    expect(await page.locator(".key-expiry").innerText()).toBe("expiry disabled");
    problems.push(...(await checkPage(page, "machine-detail")));
  });

  it("approves a pending machine", async () => {
    const key = (await s.cli(["keys", "create", "--user", "alice"])).stdout.trim();
    const n = await new TestNode(s.url, "laptop").connect();
    nodes.push(n);
    expect((await n.register({ Auth: { AuthKey: key } } as never)).MachineAuthorized).toBe(false);
    await page.goto(`${s.url}/admin/machines?status=pending`);
    expect(await page.locator("tbody").innerText()).toContain("needs approval");
    await page.click("tbody tr:has-text('laptop') button:has-text('Approve')");
    await page.waitForURL(/done=approve/);
    expect(await page.locator("main").innerText()).toContain("Machine approved.");
    const list = JSON.parse((await s.cli(["nodes", "list", "--json"])).stdout);
    expect(list.find((x: any) => x.name === "laptop").approved).toBe(true);
  });

  it("shows a policy syntax error at its line and column without losing the edit, then saves the fix", async () => {
    await page.click("text=Access controls");
    const broken = POLICY.replace(`"tag:server": ["alice@"], // servers belong to alice`, `"tag:server": ["alice@"] // missing comma\n    "tag:db": ["alice@"],`);
    await page.fill("#policy", broken);
    await page.click("button:has-text('Save')");
    const err = await page.locator("#policy-error").innerText();
    expect(err).toMatch(/^Line 5, column 5: invalid policy: .*/);
    expect(await page.inputValue("#policy")).toBe(broken);
    expect(await page.locator("#policy-gutter .bad").innerText()).toBe("5");
    problems.push(...(await checkPage(page, "acls-error")));
    const fixed = broken.replace("// missing comma", ", // comma fixed");
    await page.fill("#policy", fixed);
    await page.click("button:has-text('Save')");
    await page.waitForURL(/done=policy/);
    expect((await s.cli(["policy", "get"])).stdout).toContain(`"tag:db": ["alice@"]`);
  });

  it("adds an SSH rule in check mode 12h through the form, keeping the file's comments", async () => {
    await page.fill("#ssh-src", "alice@");
    await page.fill("#ssh-dst", "tag:server");
    await page.fill("#ssh-users", "root");
    await page.check("#ssh-check");
    await page.fill("#ssh-period", "12h");
    await page.fill("#ssh-note", "break-glass access for alice");
    await page.click("button:has-text('Add SSH rule')");
    await page.waitForURL(/done=ssh-add/);
    const saved = (await s.cli(["policy", "get"])).stdout;
    expect(saved).toContain("// rule 2: alice administers the servers over SSH");
    expect(saved).toContain("// Test policy: its comments must survive every console edit.");
    expect(saved).toContain("// comma fixed");
    expect(saved).toContain("// break-glass access for alice");
    expect(saved).toMatch(/"action": "check",[\s\S]*"checkPeriod": "12h"/);
    const table = await page.locator("#ssh ~ table, section[aria-labelledby=ssh] table").first().innerText();
    expect(table).toContain("check (12h)");
    expect(table).toContain("break-glass access for alice");
  });

  it("edits and deletes SSH rules from the list", async () => {
    await page.fill("#ssh-src", "alice@");
    await page.fill("#ssh-dst", "tag:server");
    await page.fill("#ssh-users", "ubuntu");
    await page.fill("#ssh-note", "temporary");
    await page.click("button:has-text('Add SSH rule')");
    await page.waitForURL(/done=ssh-add/);
    await page.click("section[aria-labelledby=ssh] tbody tr:nth-child(2) a:has-text('Edit')");
    expect(await page.inputValue("#ssh-users")).toBe("ubuntu");
    await page.fill("#ssh-users", "ubuntu, deploy");
    await page.fill("#ssh-note", "temporary, edited");
    await page.click("button:has-text('Save SSH rule')");
    await page.waitForURL(/done=ssh-save/);
    expect((await s.cli(["policy", "get"])).stdout).toContain("// temporary, edited");
    await page.click("section[aria-labelledby=ssh] tbody tr:nth-child(2) button:has-text('Delete')");
    await page.waitForURL(/done=ssh-delete/);
    const saved = (await s.cli(["policy", "get"])).stdout;
    expect(saved).not.toContain("temporary");
    expect(saved).toContain("// break-glass access for alice");
  });

  it("previews alice → tag:server:22 as allowed by rule 2", async () => {
    await page.selectOption("select[name=src]", "alice@");
    await page.fill("input[name=dst]", "tag:server:22");
    await page.click("button:has-text('Preview')");
    expect(await page.locator("#preview-result").innerText()).toContain("alice → tag:server:22 allowed by rule 2");
    problems.push(...(await checkPage(page, "acls")));
  });

  it("creates a user and changes a role on Users", async () => {
    await page.click("text=Users");
    await page.fill("#nu-name", "carol");
    await page.fill("#nu-password", "carol-password");
    await page.click("button:has-text('Create user')");
    await page.waitForURL(/done=user-create/);
    await page.selectOption("tbody tr:has-text('carol') select[name=role]", "admin");
    await page.click("tbody tr:has-text('carol') button:has-text('Change role')");
    await page.waitForURL(/done=user-role/);
    const carol = JSON.parse((await s.cli(["users", "list", "--json"])).stdout).find((u: any) => u.name === "carol");
    expect(carol.role).toBe("admin");
    // Server-side validation with the CLI's message.
    await page.fill("#nu-name", "Bad Name");
    await page.click("button:has-text('Create user')");
    expect(await page.locator(".err").innerText()).toContain(`name: "Bad Name" must be 1-63 characters`);
  });

  it("lists every change in the audit log", async () => {
    await page.click("text=Logs");
    const text = await page.locator("table").innerText();
    for (const action of ["authkey.create", "node.disable-expiry", "node.approve", "policy.set", "user.create", "user.set-role"]) expect(text).toContain(action);
    // Policy: the fix, the SSH rule added, added again, edited, deleted — each with its diff.
    expect((text.match(/policy\.set/g) ?? []).length).toBeGreaterThanOrEqual(5);
    expect(await page.locator("details summary:has-text('Policy diff')").count()).toBeGreaterThanOrEqual(5);
    expect(text).toContain("alice@");
    problems.push(...(await checkPage(page, "logs")));
    for (const [name, path] of [["users", "/admin/users"], ["dns", "/admin/dns"]] as const) {
      await page.goto(`${s.url}${path}`);
      problems.push(...(await checkPage(page, name)));
    }
  });

  it("a member sees no change buttons, and forged POSTs get 403", async () => {
    const member = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const p = await member.newPage();
      await login(p, "bob", "bob-password");
      for (const path of ["/admin/machines", "/admin/machines/1", "/admin/users", "/admin/settings", "/admin/acls"]) {
        await p.goto(`${s.url}${path}`);
        // Only the logout form posts.
        expect(await p.locator("main form[method=post]").count(), path).toBe(0);
      }
      problems.push(...(await checkPage(p, "machine-detail-member")));
      const csrf = await p.locator("header form[action='/logout'] input[name=csrf]").getAttribute("value");
      const forged = await p.request.post(`${s.url}/admin/machines/1/expire`, { form: { csrf: csrf! } });
      expect(forged.status()).toBe(403);
      // An admin's session without the CSRF token (a cross-site form) is refused too.
      const noToken = await page.request.post(`${s.url}/admin/machines/1/expire`, { form: { csrf: "forged" } });
      expect(noToken.status()).toBe(403);
      const list = JSON.parse((await s.cli(["nodes", "list", "--json"])).stdout);
      expect(list.find((x: any) => x.id === 1).expired).toBe(false);
    } finally {
      await member.close();
    }
  });

  it("the device-confirm page keeps its machine key inside its box on a phone", async () => {
    const n = await new TestNode(s.url, "phone-confirm").connect();
    nodes.push(n);
    const first = await n.register();
    expect(first.AuthURL).toMatch(/\/register\//);
    await page.goto(first.AuthURL!);
    expect(await page.locator("code").first().innerText()).toMatch(/^mkey:/);
    problems.push(...(await checkPage(page, "register-confirm")));
  });

  it("no secret reaches the browser after creation, no CSP violations, no overflow, no serious axe violations", async () => {
    for (const path of ["/admin/machines", "/admin/users", "/admin/settings", "/admin/logs", "/admin/acls"]) {
      const html = await (await page.request.get(`${s.url}${path}`)).text();
      expect(html, path).not.toContain(authKey);
      expect(html, path).not.toMatch(/scrypt\$/);
    }
    expect(cspErrors).toEqual([]);
    expect(problems).toEqual([]);
  });
}, 180_000);
