/**
 * Server-rendered web pages: the login form (local accounts), logout, and the
 * interactive-registration confirm page `/register/<id>`. No JavaScript. Forms carry a
 * CSRF token (HMAC of a per-browser cookie, or of the session id once logged in), and
 * cookies are HttpOnly, SameSite=Lax (Secure over HTTPS).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Control } from "../app.js";
import { ControlError } from "../errors.js";
import { readBody } from "./json.js";
import { OIDC_FLOW_COOKIE, OIDC_FLOW_MS, type OidcLogin } from "./oidc.js";
import { parseCookies } from "./decode.js";
import { safeRedirectPath } from "./redirect.js";
import { LoginThrottle, type LoginThrottleOptions } from "./login-throttle.js";

export { parseCookies } from "./decode.js";
import { confirmBody } from "./confirm-page.js";
import { loginName } from "@lattice/policy";
import { createSshCheckPage } from "./ssh-check-page.js";

const SESSION_COOKIE = "lattice_session";
const CSRF_COOKIE = "lattice_csrf";

/** Escapes text for HTML. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
}

/** A whole page in the server's one HTML style (title, escaped; body, HTML). */
export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Lattice</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#222}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem}.err{color:#b00020}.box{border:1px solid #ccc;border-radius:6px;padding:1rem;overflow-wrap:anywhere}code{overflow-wrap:anywhere}
.btn{display:inline-block;padding:.5rem 1.2rem;border:1px solid #555;border-radius:4px;color:#222;text-decoration:none}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;
}

/** Options of {@link createWebHandler}. */
export interface WebHandlerOptions {
  secureCookies: boolean;
  /** OIDC login (adds the "Sign in with …" button and `/oidc/login`, `/oidc/callback`). */
  oidc?: OidcLogin | null | undefined;
  /** Failed-login throttling (defaults: see login-throttle.ts). */
  loginThrottle?: Partial<LoginThrottleOptions> | undefined;
}

/** Builds the web page handler; returns false when the path is not one of its pages. */
export function createWebHandler(c: Control, opts: WebHandlerOptions) {
  const oidc = opts.oidc ?? null;
  const localLogin = !oidc?.config.only;
  const origin = new URL(c.ctx.options.serverUrl).origin;
  const safeNext = (next: string | null | undefined) => safeRedirectPath(next, origin);
  const cookieAttrs = `Path=/; HttpOnly; SameSite=Lax${opts.secureCookies ? "; Secure" : ""}`;

  const send = (res: ServerResponse, status: number, html: string, headers: Record<string, string | string[]> = {}) => {
    const data = Buffer.from(html);
    res.writeHead(status, {
      "content-type": "text/html; charset=utf-8",
      "content-length": data.length,
      "cache-control": "no-store",
      "x-frame-options": "DENY",
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
      ...headers,
    });
    res.end(data);
  };
  const redirect = (res: ServerResponse, to: string, headers: Record<string, string | string[]> = {}) => {
    res.writeHead(303, { location: to, "cache-control": "no-store", ...headers });
    res.end();
  };
  const form = async (req: IncomingMessage) => {
    const type = String(req.headers["content-type"] ?? "");
    if (!type.startsWith("application/x-www-form-urlencoded")) throw new ControlError("bad_form", "expected a form post", 415);
    return new URLSearchParams((await readBody(req, 64 * 1024)).toString("utf8"));
  };

  const loginForm = (res: ServerResponse, req: IncomingMessage, next: string, error?: string, status = 200) => {
    let csrf = parseCookies(req.headers.cookie).get(CSRF_COOKIE);
    const headers: Record<string, string> = {};
    if (!csrf || !/^[A-Za-z0-9_-]{16,64}$/.test(csrf)) {
      csrf = c.ctx.random(18).toString("base64url");
      headers["set-cookie"] = `${CSRF_COOKIE}=${csrf}; ${cookieAttrs}`;
    }
    const token = c.sessions.sign(`csrf-login:${csrf}`);
    const oidcButton = oidc
      ? `<p><a class="btn" href="/oidc/login?next=${esc(encodeURIComponent(next))}">${esc(oidc.label)}</a></p>${localLogin ? "<p>or log in with a local account:</p>" : ""}`
      : "";
    const localForm = !localLogin
      ? ""
      : `<form method="post" action="/login">
<input type="hidden" name="csrf" value="${esc(token)}"><input type="hidden" name="next" value="${esc(next)}">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button></form>`;
    send(res, status, page("Log in to Lattice", `${error ? `<p class="err">${esc(error)}</p>` : ""}${oidcButton}${localForm}`), headers);
  };

  const sshCheckPage = createSshCheckPage(c, {
    esc,
    page,
    send: (res, status, html) => send(res, status, html),
    redirect: (res, to) => redirect(res, to),
    form,
    session: (req) => c.sessions.lookup(parseCookies(req.headers.cookie).get(SESSION_COOKIE)),
  });

  // Failed logins: per (account, address) with backoff, plus a gentler per-address cap.
  const throttle = new LoginThrottle(c.ctx.now, opts.loginThrottle);

  return async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> => {
    const path = url.pathname;
    const cookies = parseCookies(req.headers.cookie);
    if (path === "/login" && req.method === "GET") {
      loginForm(res, req, safeNext(url.searchParams.get("next")));
      return true;
    }
    if (path === "/login" && req.method === "POST") {
      if (!localLogin) {
        req.resume();
        loginForm(res, req, "/", "Local accounts are disabled on this server; sign in with the identity provider.", 403);
        return true;
      }
      const f = await form(req);
      const csrf = cookies.get(CSRF_COOKIE);
      const next = safeNext(f.get("next"));
      if (!csrf || !c.sessions.verify(`csrf-login:${csrf}`, f.get("csrf") ?? "")) {
        loginForm(res, req, next, "Your form expired; please try again.", 403);
        return true;
      }
      const addr = req.socket.remoteAddress;
      const username = f.get("username") ?? "";
      const verdict = throttle.check(username, addr);
      if (!verdict.allowed) {
        const minutes = Math.max(1, Math.ceil(verdict.retryAfterMs / 60_000));
        const what = verdict.scope === "account" ? `for ${JSON.stringify(username.slice(0, 64))} from your address` : "from your address";
        res.setHeader("retry-after", String(Math.ceil(verdict.retryAfterMs / 1000)));
        loginForm(res, req, next, `Too many failed attempts ${what}; try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`, 429);
        return true;
      }
      const user = await c.users.authenticate(username, f.get("password") ?? "");
      if (!user) {
        throttle.fail(username, addr);
        loginForm(res, req, next, "Wrong user name or password.", 401);
        return true;
      }
      throttle.succeed(username, addr);
      const session = await c.sessions.create(user.id);
      redirect(res, next, { "set-cookie": `${SESSION_COOKIE}=${session}; ${cookieAttrs}` });
      return true;
    }
    if (oidc && path === "/oidc/login" && req.method === "GET") {
      try {
        const { location, cookie } = await oidc.start(safeNext(url.searchParams.get("next")));
        redirect(res, location, { "set-cookie": `${OIDC_FLOW_COOKIE}=${cookie}; ${cookieAttrs}; Max-Age=${OIDC_FLOW_MS / 1000}` });
      } catch (e) {
        if (!(e instanceof ControlError)) throw e;
        send(res, e.status, page("Sign in", `<p class="err">${esc(e.message)}</p><p><a href="/login">Back to the login page</a></p>`));
      }
      return true;
    }
    if (oidc && path === "/oidc/callback" && req.method === "GET") {
      const clearFlow = `${OIDC_FLOW_COOKIE}=; ${cookieAttrs}; Max-Age=0`;
      try {
        const { user, next } = await oidc.finish(url.searchParams, cookies.get(OIDC_FLOW_COOKIE));
        const session = await c.sessions.create(user.id);
        redirect(res, safeNext(next), { "set-cookie": [clearFlow, `${SESSION_COOKIE}=${session}; ${cookieAttrs}`] });
      } catch (e) {
        if (!(e instanceof ControlError)) throw e;
        send(res, e.status, page("Sign in", `<p class="err">${esc(e.message)}</p><p><a href="/login">Back to the login page</a></p>`), { "set-cookie": clearFlow });
      }
      return true;
    }
    if (path === "/logout" && req.method === "POST") {
      const s = await c.sessions.lookup(cookies.get(SESSION_COOKIE));
      const f = await form(req);
      if (s && c.sessions.verify(`csrf:${s.id}`, f.get("csrf") ?? "")) await c.sessions.destroy(s.id);
      redirect(res, "/login", { "set-cookie": `${SESSION_COOKIE}=; ${cookieAttrs}; Max-Age=0` });
      return true;
    }
    const reg = /^\/register\/([A-Za-z0-9_-]{8,64})$/.exec(path);
    if (reg && (req.method === "GET" || req.method === "POST")) {
      const id = reg[1]!;
      const session = await c.sessions.lookup(cookies.get(SESSION_COOKIE));
      if (!session) {
        if (req.method === "POST") req.resume();
        redirect(res, `/login?next=${encodeURIComponent(path)}`);
        return true;
      }
      let pending;
      try {
        pending = await c.registrations.get(id);
      } catch (e) {
        if (e instanceof ControlError) {
          send(res, e.status, page("Registration", `<p class="err">${esc(e.message)}</p>`));
          return true;
        }
        throw e;
      }
      const token = c.sessions.sign(`csrf:${session.id}`);
      if (req.method === "GET") {
        if (pending.completed_at != null) {
          send(res, 200, page("Device registered", `<p>This device is already registered.</p>`));
          return true;
        }
        const existingRow = await c.nodes.byMachineKey(pending.machine_key);
        const ownerRow = existingRow?.user_id != null ? await c.db.kysely.selectFrom("users").selectAll().where("id", "=", existingRow.user_id).executeTakeFirst() : undefined;
        const body = confirmBody(
          {
            input: pending.input,
            machineKey: pending.machine_key,
            user: session.user,
            policy: (await c.policies.current()).policy,
            existing: existingRow ? { row: existingRow, ownerLogin: ownerRow ? loginName(ownerRow) : null } : null,
            nodeKeyExpiryMs: c.ctx.options.nodeKeyExpiryMs,
            ephemeralTimeoutMs: c.ctx.options.ephemeralTimeoutMs,
            now: c.ctx.now(),
          },
          esc,
          `<form method="post" action="${esc(path)}"><input type="hidden" name="csrf" value="${esc(token)}"><button type="submit">Register device</button></form>`,
        );
        send(
          res,
          body.allowed ? 200 : 403,
          page("Register device", `${body.html}\n<form method="post" action="/logout"><input type="hidden" name="csrf" value="${esc(token)}"><button type="submit">Log out</button></form>`),
        );
        return true;
      }
      const f = await form(req);
      if (!c.sessions.verify(`csrf:${session.id}`, f.get("csrf") ?? "")) {
        send(res, 403, page("Register device", `<p class="err">Your form expired; reload the page and try again.</p>`));
        return true;
      }
      try {
        const node = await c.registrations.complete(id, session.user.id);
        send(res, 200, page("Device registered", `<p>Registered <b>${esc(node.given_name)}</b> (${esc(node.ipv4)}). You can close this page.</p>`));
      } catch (e) {
        if (!(e instanceof ControlError)) throw e;
        send(res, e.status, page("Register device", `<p class="err">${esc(e.message)}</p>`));
      }
      return true;
    }
    if (await sshCheckPage(req, res, path)) return true;
    if (path === "/" && req.method === "GET") {
      send(res, 200, page("Lattice", `<p>This is a Lattice coordination server.</p><p><a href="/login">Log in</a></p>`));
      return true;
    }
    return false;
  };
}
