/**
 * OIDC login end to end: a real OpenID Provider (oidc-provider, in this process) and the
 * real lattice-control process; a cookie-keeping client walks the browser flow by hand
 * (login page → "Sign in with …" → provider login + consent → callback → session) and an
 * interactive node registration completes through `/register/<id>`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, runCli, startServer, TestNode, type ServerProc } from "./harness.js";
import { startIdp, type TestIdp } from "./fixtures/oidc-idp.js";
import { Browser, parseForm, type Page } from "./fixtures/browser.js";

const ACCOUNTS = {
  carol: { email: "Carol@Example.com", email_verified: true, preferred_username: "carol", name: "Carol C" },
  "carol-org": { email: "carol@example.org", email_verified: true },
  "dave-sub": { email: "dave@example.com", email_verified: true, preferred_username: "dave" },
  mallory: { email: "mallory@evil.test", email_verified: true },
  eve: { email: "eve@example.com", email_verified: false },
  guest: { email: "guest@partner.test" },
};

describe("OIDC login (oidc-provider + lattice-control)", () => {
  let idp: TestIdp;
  let s: ServerProc;
  const nodes: TestNode[] = [];
  const users = async () => JSON.parse((await s.cli(["users", "list", "--json"])).stdout) as Array<{ name: string; email: string | null }>;

  beforeAll(async () => {
    const port = await freePort();
    idp = await startIdp(`http://127.0.0.1:${port}/oidc/callback`, ACCOUNTS);
    const dir = mkdtempSync(join(tmpdir(), "lattice-oidc-test-"));
    writeFileSync(join(dir, "secret"), `${idp.clientSecret}\n`, { mode: 0o600 });
    s = await startServer({
      dir,
      port,
      args: ["--oidc-issuer", idp.issuer, "--oidc-client-id", idp.clientId, "--oidc-client-secret-file", join(dir, "secret"), "--oidc-allowed-domains", "example.com, example.org"],
      env: { LATTICE_CONTROL_OIDC_ALLOWED_USERS: "guest@partner.test" },
    });
    expect((await s.cli(["users", "create", "dave", "--email", "dave@example.com"])).code).toBe(0);
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
    await idp?.close();
  });

  /** Opens `start` on the server, clicks the OIDC button and signs in at the provider as `account`. */
  const signIn = async (b: Browser, start: string, account: string): Promise<Page> => {
    const login = await b.go(start);
    expect(login.status).toBe(200);
    const button = /<a class="btn" href="([^"]+)">([^<]+)<\/a>/.exec(login.html);
    expect(button, login.html).not.toBeNull();
    expect(button![2]).toBe(`Sign in with ${new URL(idp.issuer).host}`);
    let page = await b.go(new URL(button![1]!.replace(/&amp;/g, "&"), s.url).href);
    // The authorization request carries PKCE (S256), state and nonce.
    const authHop = page.hops.find((h) => h.location?.startsWith(`${idp.issuer}/auth`));
    const auth = new URL(authHop!.location!);
    expect(auth.searchParams.get("code_challenge_method")).toBe("S256");
    expect(auth.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.searchParams.get("state")).toBeTruthy();
    expect(auth.searchParams.get("nonce")).toBeTruthy();
    expect(auth.searchParams.get("redirect_uri")).toBe(`${s.url}/oidc/callback`);
    for (let i = 0; i < 4 && page.url.startsWith(idp.issuer); i++) {
      const form = parseForm(page.html, page.url);
      expect(form, page.html).not.toBeNull();
      if (form!.fields.prompt === "login") Object.assign(form!.fields, { login: account, password: "any password" });
      page = await b.go(form!.action, { form: form!.fields });
    }
    return page;
  };

  /** A node asks for interactive registration; returns its auth URL and the pending follow-up. */
  const pendingNode = async (host: string) => {
    const n = await new TestNode(s.url, host).connect();
    nodes.push(n);
    const first = await n.register({});
    expect(first.AuthURL).toMatch(new RegExp(`^${s.url}/register/`));
    const follow = n.register({ Followup: first.AuthURL });
    follow.catch(() => {}); // some are never confirmed; the connection closes at the end
    return { n, authUrl: first.AuthURL, follow };
  };

  /** Registers a device through the confirm page the sign-in landed on. */
  const confirm = async (b: Browser, page: Page) => {
    const form = parseForm(page.html.slice(page.html.indexOf('<div class="box">')), page.url)!;
    return b.go(form.action, { form: form.fields });
  };

  it("prints the OIDC redirect URI at startup", () => {
    expect(s.stdout()).toContain(`OIDC login: ${idp.issuer} (redirect URI ${s.url}/oidc/callback)`);
  });

  it("signs in through the provider and completes an interactive node registration", async () => {
    const { authUrl, follow } = await pendingNode("oidc-laptop");
    const b = new Browser();
    const page = await signIn(b, authUrl, "carol");
    // Back on the server with a session, on the registration's confirm page.
    expect(page.url).toBe(authUrl);
    expect(page.status).toBe(200);
    expect(page.html).toContain("oidc-laptop");
    expect(page.html).toContain("as <b>carol@example.com</b> (user carol)");
    expect(b.cookie("127.0.0.1", "lattice_session")).toBeTruthy();
    expect(b.cookie("127.0.0.1", "lattice_oidc")).toBeUndefined(); // flow cookie cleared
    const done = await confirm(b, page);
    expect(done.status).toBe(200);
    expect(done.html).toContain("Device registered");
    const resp = await follow;
    expect(resp.MachineAuthorized).toBe(true);
    expect(resp.Login.LoginName).toBe("carol@example.com");
    const carol = (await users()).find((u) => u.name === "carol");
    expect(carol?.email).toBe("carol@example.com");
  });

  it("maps later sign-ins to the same user, links existing users by e-mail, and makes new names unique", async () => {
    const before = (await users()).length;
    const again = await pendingNode("oidc-again");
    expect((await signIn(new Browser(), again.authUrl, "carol")).html).toContain("as <b>carol@example.com</b> (user carol)");
    // dave exists as a local user with that e-mail: the OIDC identity is linked to him.
    const d = await pendingNode("oidc-dave");
    const db = new Browser();
    const davePage = await signIn(db, d.authUrl, "dave-sub");
    expect(davePage.html).toContain("as <b>dave@example.com</b> (user dave)");
    expect((await confirm(db, davePage)).status).toBe(200);
    expect((await d.follow).Login.LoginName).toBe("dave@example.com");
    expect((await users()).length).toBe(before);
    // Another "carol" (other domain, other subject) gets a new, unique name.
    const o = await pendingNode("oidc-org");
    expect((await signIn(new Browser(), o.authUrl, "carol-org")).html).toContain("as <b>carol@example.org</b> (user carol-2)");
    // Allowed by --oidc-allowed-users (env), with no email_verified claim at all.
    const g = await pendingNode("oidc-guest");
    expect((await signIn(new Browser(), g.authUrl, "guest")).html).toContain("as <b>guest@partner.test</b> (user guest)");
    const after = await users();
    expect(after.length).toBe(before + 2);
    expect(after.find((u) => u.name === "carol-2")?.email).toBe("carol@example.org");
  });

  it("refuses disallowed domains and unverified e-mail with 403 and a message", async () => {
    const bad = await signIn(new Browser(), `${s.url}/login`, "mallory");
    expect(bad.status).toBe(403);
    expect(bad.html).toContain("mallory@evil.test is not allowed to sign in to this server");
    const unverified = await signIn(new Browser(), `${s.url}/login`, "eve");
    expect(unverified.status).toBe(403);
    expect(unverified.html).toContain("eve@example.com is not verified");
    expect((await users()).some((u) => u.email === "mallory@evil.test" || u.email === "eve@example.com")).toBe(false);
  });

  it("rejects a callback with the wrong state or without the flow cookie (400)", async () => {
    const b = new Browser();
    const start = await b.request(`${s.url}/oidc/login?next=/`);
    expect(start.status).toBe(303);
    expect(b.cookie("127.0.0.1", "lattice_oidc")).toBeTruthy();
    const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
    const wrong = await b.request(`${s.url}/oidc/callback?code=abc&state=${state}x`);
    expect(wrong.status).toBe(400);
    expect(await wrong.text()).toContain("state mismatch");
    expect(wrong.headers.getSetCookie().join("\n")).not.toContain("lattice_session=");
    const noCookie = await fetch(`${s.url}/oidc/callback?code=abc&state=${state}`, { redirect: "manual" });
    expect(noCookie.status).toBe(400);
    // A forged code with the right state is refused by the provider's token endpoint.
    const b2 = new Browser();
    const start2 = await b2.request(`${s.url}/oidc/login?next=/`);
    const state2 = new URL(start2.headers.get("location")!).searchParams.get("state")!;
    const forged = await b2.request(`${s.url}/oidc/callback?code=forged&state=${state2}`);
    expect(forged.status).toBe(400);
    expect(await forged.text()).toContain("could not be verified");
    // The provider reporting an error is shown, not crashed on.
    const denied = await b2.request(`${s.url}/oidc/callback?error=access_denied&error_description=nope`);
    expect(denied.status).toBe(401);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  it("/oidc/login?next= only ever leads back to a path on the server's own origin", async () => {
    for (const next of ["/%09/evil.example/x", "//evil.example/x", "/%5C%5Cevil.example", "https://evil.example/x"]) {
      const b = new Browser();
      const foreign = (u: URL) => u.origin !== new URL(s.url).origin && u.origin !== new URL(idp.issuer).origin;
      let page = await b.go(`${s.url}/oidc/login?next=${next}`, {}, foreign);
      for (let i = 0; i < 4 && page.url.startsWith(idp.issuer); i++) {
        const form = parseForm(page.html, page.url);
        expect(form, page.html).not.toBeNull();
        if (form!.fields.prompt === "login") Object.assign(form!.fields, { login: "carol", password: "any password" });
        page = await b.go(form!.action, { form: form!.fields }, foreign);
      }
      const callback = page.hops.find((h) => h.url.startsWith(`${s.url}/oidc/callback`));
      expect(callback?.status, `${next}: ${JSON.stringify(page.hops)}`).toBe(303);
      expect(callback!.location, next).toBe("/");
      expect(new URL(page.url).origin).toBe(new URL(s.url).origin);
    }
  });

  it("keeps local accounts available next to OIDC", async () => {
    const html = await (await fetch(`${s.url}/login`)).text();
    expect(html).toContain('name="password"');
    expect(html).toContain("Sign in with");
  });

  it("--oidc-only hides and refuses the local login", async () => {
    const port = await freePort();
    const only = await startServer({
      port,
      args: ["--oidc-issuer", idp.issuer, "--oidc-client-id", idp.clientId, "--oidc-client-secret", idp.clientSecret, "--oidc-only"],
    });
    try {
      const html = await (await fetch(`${only.url}/login`)).text();
      expect(html).toContain("Sign in with");
      expect(html).not.toContain('name="password"');
      const post = await fetch(`${only.url}/login`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "username=a&password=b" });
      expect(post.status).toBe(403);
    } finally {
      await only.stop();
    }
  });

  it("a partial OIDC configuration exits non-zero naming the missing field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-oidc-cfg-"));
    const base = ["serve", "--listen", "127.0.0.1:0", "--db", join(dir, "x.db"), "--socket", join(dir, "s.sock")];
    const noSecret = await runCli([...base, "--oidc-issuer", idp.issuer, "--oidc-client-id", "x"]);
    expect(noSecret.code).not.toBe(0);
    expect(noSecret.stderr).toContain("missing --oidc-client-secret or --oidc-client-secret-file");
    const noIssuer = await runCli([...base, "--oidc-client-id", "x", "--oidc-client-secret", "y"]);
    expect(noIssuer.code).not.toBe(0);
    expect(noIssuer.stderr).toContain("missing --oidc-issuer");
    writeFileSync(join(dir, "cfg.json"), JSON.stringify({ oidcIssuer: "https://idp.example.com", oidcClientSecret: "s" }));
    const fromFile = await runCli([...base, "--config", join(dir, "cfg.json")]);
    expect(fromFile.code).not.toBe(0);
    expect(fromFile.stderr).toContain("missing --oidc-client-id (oidcClientId)");
    const plainHttp = await runCli([...base, "--oidc-issuer", "http://idp.example.com", "--oidc-client-id", "x", "--oidc-client-secret", "y"]);
    expect(plainHttp.code).not.toBe(0);
    expect(plainHttp.stderr).toContain("oidcIssuer");
    // From the environment too.
    await expect(startServer({ env: { LATTICE_CONTROL_OIDC_CLIENT_ID: "x" } })).rejects.toThrow(/missing --oidc-issuer/);
  });
});
