// Approves (or denies) an SSH check on lattice-control's page as a person would: the web
// login form, then the check page's form with its CSRF token. Run inside the control's
// network namespace. Usage: node approve-check.mjs CHECK_URL USER PASSWORD approve|deny
// Prints the page's request line ("… wants to SSH as … to …") and exits 0 on HTTP 200.
const [checkUrl, user, password, decision] = process.argv.slice(2);
const u = new URL(checkUrl);
const base = u.origin;
const next = u.pathname;
const form = await fetch(`${base}/login?next=${encodeURIComponent(next)}`);
const csrfCookie = form.headers.get("set-cookie").split(";")[0];
const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())[1];
const login = await fetch(`${base}/login`, {
  method: "POST",
  redirect: "manual",
  headers: { "content-type": "application/x-www-form-urlencoded", cookie: csrfCookie },
  body: new URLSearchParams({ csrf, next, username: user, password }).toString(),
});
if (login.status !== 303) throw new Error(`login: HTTP ${login.status}`);
const session = login.headers.get("set-cookie").split(";")[0];
const page = await (await fetch(checkUrl, { headers: { cookie: session } })).text();
const what = /wants to SSH[^<]*(<[^>]+>[^<]*)*/.exec(page.replace(/<\/?b>/g, ""));
process.stdout.write(`${(what?.[0] ?? page.slice(0, 200)).trim()}\n`);
const pageCsrf = /name="csrf" value="([^"]+)"/.exec(page)[1];
const r = await fetch(checkUrl, {
  method: "POST",
  headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({ csrf: pageCsrf, decision }).toString(),
});
process.exit(r.status === 200 ? 0 : 1);
