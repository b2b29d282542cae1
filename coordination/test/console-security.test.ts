/**
 * Issue 11, acceptance 3 without a browser: the console's session timeout, CSRF, headers on
 * every page, and server-side validation answering with the CLI's own messages.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, webLogin, type ServerProc } from "./harness.js";

describe("console security (issue 11)", () => {
  let s: ServerProc;
  beforeAll(async () => {
    s = await startServer({ env: { LATTICE_CONTROL_WEB_SESSION_TIMEOUT: "3s" } });
    expect((await s.cli(["users", "create", "alice", "--password-stdin"], "alice-password\n")).code).toBe(0);
  });
  afterAll(async () => {
    await s?.stop();
  });

  const csrfOf = async (cookie: string) => /name="csrf" value="([^"]+)"/.exec(await (await fetch(`${s.url}/admin/settings`, { headers: { cookie } })).text())![1]!;
  const post = (cookie: string, path: string, form: Record<string, string>) =>
    fetch(`${s.url}${path}`, { method: "POST", redirect: "manual", headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form).toString() });

  it("every console page carries CSP without inline scripts, no framing, no caching", async () => {
    const cookie = await webLogin(s.url, "alice", "alice-password", "/admin/machines");
    for (const path of ["/admin/machines", "/admin/users", "/admin/acls", "/admin/dns", "/admin/logs", "/admin/settings", "/admin/machines/999"]) {
      const r = await fetch(`${s.url}${path}`, { headers: { cookie } });
      const h = r.headers;
      expect(h.get("content-security-policy"), path).toMatch(/script-src 'self';/);
      expect(h.get("content-security-policy"), path).not.toContain("unsafe");
      expect(h.get("x-frame-options"), path).toBe("DENY");
      expect(h.get("cache-control"), path).toBe("no-store");
      expect(h.get("x-content-type-options"), path).toBe("nosniff");
      expect(await r.text(), path).not.toMatch(/<script>|on(click|submit|load)=/i);
    }
  });

  it("a change without the session's CSRF token is refused; a wrong method is 405, not 500", async () => {
    const cookie = await webLogin(s.url, "alice", "alice-password", "/admin/machines");
    const r = await post(cookie, "/admin/settings/keys", { tags: "", user: "alice", expiryDays: "30" });
    expect(r.status).toBe(403);
    expect(await r.text()).toContain("your form expired or did not come from this console");
    expect((await s.cli(["keys", "list", "--json"])).stdout.trim()).toBe("[]");
    expect((await fetch(`${s.url}/admin/machines`, { method: "PUT", headers: { cookie } })).status).toBe(405);
    // A bad percent-escape in a path is the client's mistake: 400, never 500.
    const csrf = await csrfOf(cookie);
    expect((await post(cookie, "/admin/users/%E0%A4%A/delete", { csrf })).status).toBe(400);
  });

  it("hostile posts: oversized bodies get 413, other content types 415, unknown paths 404 — never 500", async () => {
    const cookie = await webLogin(s.url, "alice", "alice-password", "/admin/machines");
    const big = await fetch(`${s.url}/admin/acls`, { method: "POST", headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: `policy=${"a".repeat(300 * 1024)}` });
    expect(big.status).toBe(413);
    const json = await fetch(`${s.url}/admin/acls`, { method: "POST", headers: { cookie, "content-type": "application/json" }, body: "{}" });
    expect(json.status).toBe(415);
    const csrf = await csrfOf(cookie);
    expect((await post(cookie, "/admin/machines/1/explode", { csrf })).status).toBe(404);
    expect((await post(cookie, "/admin/nowhere", { csrf })).status).toBe(404);
    expect((await fetch(`${s.url}/admin/machines?page=-1&status=%ZZ`, { headers: { cookie } })).status).toBe(200);
  });

  it("form fields are validated by the server with the CLI's messages", async () => {
    const cookie = await webLogin(s.url, "alice", "alice-password", "/admin/machines");
    const csrf = await csrfOf(cookie);
    const web = await (await post(cookie, "/admin/settings/keys", { csrf, user: "alice", expiryDays: "91" })).text();
    const cli = await s.cli(["keys", "create", "--user", "alice", "--expiry", "91d"]);
    const message = cli.stderr.replace(/^error: /, "").trim();
    expect(message).toContain("expiry: must be between 1 day");
    expect(web).toContain(message.replace(/\(/g, "(").replace(/'/g, "&#39;"));
    const badUser = await (await post(cookie, "/admin/users", { csrf, name: "Bad Name", role: "member" })).text();
    const cliUser = (await s.cli(["users", "create", "Bad Name"])).stderr.replace(/^error: /, "").trim();
    expect(badUser).toContain(cliUser.replace(/"/g, "&quot;").replace(/'/g, "&#39;"));
  });

  it("sessions end after webSessionTimeout: the console sends the browser back to the login page", async () => {
    const cookie = await webLogin(s.url, "alice", "alice-password", "/admin/machines");
    expect((await fetch(`${s.url}/admin/machines`, { headers: { cookie }, redirect: "manual" })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 3200));
    const later = await fetch(`${s.url}/admin/machines`, { headers: { cookie }, redirect: "manual" });
    expect(later.status).toBe(303);
    expect(later.headers.get("location")).toBe("/login?next=%2Fadmin%2Fmachines");
    const postLater = await post(cookie, "/admin/settings/keys", { csrf: "x" });
    expect(postLater.status).toBe(401);
  });
});
