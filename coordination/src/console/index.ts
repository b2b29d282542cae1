/**
 * The admin console under `/admin` (issue 11), served by lattice-control itself.
 *
 * - Reading works without JavaScript: every page is rendered on the server; the script
 *   (`/admin/static/console.js`, same origin) only adds conveniences.
 * - Access: the web login session (`/login`, OIDC). Everyone who can log in may read;
 *   changes need the owner or admin role — members see no change buttons and a forged
 *   POST gets 403. Every POST carries the session's CSRF token (HMAC of the session id).
 * - Every change goes through the same services (and so the same validation messages) as
 *   the CLI and REST API, and is written to the audit log with who, what and from where.
 * - Secrets are shown once, in the response that created them; lists show prefixes only.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { isAdminRole, explainAccess } from "@lattice/policy";
import type { Control } from "../app.js";
import { ControlError, ForbiddenError, PolicyRejectedError, ValidationError } from "../errors.js";
import { readBody } from "../http/json.js";
import { decodePathParam, parseCookies } from "../http/decode.js";
import { policyDiff, type AuditActor } from "../services/audit.js";
import { loadTopology } from "../services/topology.js";
import { loginName, roleOf } from "../services/users.js";
import { parseDuration } from "../duration.js";
import { aclBody, deleteSshRule, putSshRule, readSshForm, type AclPageFacts } from "./acl.js";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets.js";
import { CONSOLE_HEADERS, consolePage, esc, sendHtml, type Viewer } from "./layout.js";
import { machineBody, machineFilter, machinesBody, queryMachines } from "./machines.js";
import { dnsBody, logsBody, secretOnce, settingsBody, usersBody, type UserFacts } from "./pages.js";
import { reachOf } from "./reach.js";

const SESSION_COOKIE = "lattice_session";
/** Largest console form (the policy file). */
const MAX_FORM_BYTES = 256 * 1024;

/** Messages of `?done=` after a change (Post/Redirect/Get). */
const DONE: Record<string, string> = {
  approve: "Machine approved.",
  expire: "Key expired: the machine must log in again.",
  "disable-expiry": "Key expiry disabled.",
  "enable-expiry": "Key expiry enabled.",
  rename: "Machine renamed.",
  tags: "Tags saved.",
  routes: "Routes saved.",
  delete: "Machine deleted.",
  "user-create": "User created.",
  "user-role": "Role changed.",
  "user-delete": "User deleted.",
  "key-revoke": "Auth key revoked.",
  "apikey-revoke": "API key revoked.",
  policy: "Policy saved.",
  "ssh-add": "SSH rule added.",
  "ssh-save": "SSH rule saved.",
  "ssh-delete": "SSH rule deleted.",
};

interface Session {
  id: string;
  viewer: Viewer;
  actor: AuditActor;
}

/** Builds the console's request handler; returns false for paths outside `/admin`. */
export function createConsoleHandler(c: Control): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean> {
  const redirect = (res: ServerResponse, to: string) => {
    res.writeHead(303, { ...CONSOLE_HEADERS, location: to });
    res.end();
  };
  const sendAsset = (res: ServerResponse, type: string, body: string) => {
    const data = Buffer.from(body);
    res.writeHead(200, { "content-type": type, "content-length": data.length, "cache-control": "no-cache", "x-content-type-options": "nosniff" });
    res.end(data);
  };
  const form = async (req: IncomingMessage) => {
    const type = String(req.headers["content-type"] ?? "");
    if (!type.startsWith("application/x-www-form-urlencoded")) throw new ControlError("bad_form", "expected a form post", 415);
    return new URLSearchParams((await readBody(req, MAX_FORM_BYTES)).toString("utf8"));
  };
  const session = async (req: IncomingMessage): Promise<Session | null> => {
    const s = await c.sessions.lookup(parseCookies(req.headers.cookie).get(SESSION_COOKIE));
    if (!s) return null;
    const role = roleOf(s.user);
    const login = loginName(s.user);
    return {
      id: s.id,
      viewer: { login, role, admin: isAdminRole(role), csrf: c.sessions.sign(`csrf:${s.id}`) },
      actor: { actor: login, userId: s.user.id, source: req.socket.remoteAddress ?? "unknown" },
    };
  };
  const domain = () => c.settings.tailnetDomain();
  const flash = (u: URL) => DONE[u.searchParams.get("done") ?? ""] ?? null;

  // --- pages -------------------------------------------------------------------------
  const machinesPage = async (res: ServerResponse, v: Viewer, u: URL) => {
    const f = machineFilter(u);
    const page = await queryMachines(c, f);
    sendHtml(res, 200, consolePage(v, "/admin/machines", "Machines", machinesBody(v, f, page, await domain(), c.ctx.now()), { flash: flash(u) }));
  };
  const machinePage = async (res: ServerResponse, v: Viewer, id: number, o: { flash?: string | null; error?: string | null; status?: number } = {}) => {
    const n = await c.db.kysely
      .selectFrom("nodes")
      .leftJoin("users", "users.id", "nodes.user_id")
      .selectAll("nodes")
      .select(["users.name as user_name", "users.email as user_email"])
      .where("nodes.id", "=", id)
      .executeTakeFirst();
    if (!n) {
      sendHtml(res, 404, consolePage(v, "/admin/machines", "Machine not found", `<p>No machine has id ${id}. <a href="/admin/machines">All machines</a></p>`));
      return;
    }
    const reach = await reachOf(c, n);
    sendHtml(res, o.status ?? 200, consolePage(v, "/admin/machines", n.given_name, machineBody(v, n, await domain(), c.ctx.now(), reach), o));
  };
  const usersPage = async (res: ServerResponse, v: Viewer, o: { flash?: string | null; error?: string | null; status?: number } = {}) => {
    const rows = await c.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
    const stats = await c.db.kysely
      .selectFrom("nodes")
      .select((eb) => ["user_id", eb.fn.countAll<number>().as("n"), eb.fn.max("last_seen").as("seen")])
      .where("user_id", "is not", null)
      .groupBy("user_id")
      .execute();
    const by = new Map(stats.map((s) => [s.user_id, s]));
    const users: UserFacts[] = rows.map((u) => ({
      name: u.name,
      login: loginName(u),
      role: roleOf(u),
      method: [u.password_hash ? "password" : "", u.oidc_issuer ? `OIDC (${new URL(u.oidc_issuer).host})` : ""].filter(Boolean).join(", ") || "none (invited)",
      devices: Number(by.get(u.id)?.n ?? 0),
      lastSeen: by.get(u.id)?.seen != null ? Number(by.get(u.id)!.seen) : null,
    }));
    sendHtml(res, o.status ?? 200, consolePage(v, "/admin/users", "Users", usersBody(v, users, c.ctx.now()), o));
  };
  const settingsPage = async (res: ServerResponse, v: Viewer, o: { flash?: string | null; error?: string | null; status?: number; created?: string } = {}) => {
    const [keys, apiKeys, users] = await Promise.all([c.authKeys.list(), c.apiKeys.list(), c.users.list()]);
    sendHtml(res, o.status ?? 200, consolePage(v, "/admin/settings", "Settings", settingsBody(v, keys, apiKeys, users.map((u) => u.name), c.ctx.now(), o.created ?? ""), o));
  };
  const aclPage = async (res: ServerResponse, v: Viewer, u: URL, o: { text?: string; error?: AclPageFacts["error"]; sshError?: string; editing?: number | null; status?: number } = {}) => {
    const cur = await c.policies.get();
    const src = u.searchParams.get("src") ?? "";
    const dst = (u.searchParams.get("dst") ?? "").trim();
    const topology = await loadTopology(c.ctx);
    const preview: AclPageFacts["preview"] = { src, dst, result: null, error: null };
    if (src && dst) {
      try {
        const { policy } = await c.policies.current();
        const r = explainAccess(cur.policy, policy, topology, src, dst);
        const label = topology.users.find((x) => x.email === src)?.name ?? src;
        const rule = r.rule ? `${r.rule.list === "acls" ? "rule" : "grant"} ${r.rule.number}` : "";
        preview.result = {
          allowed: r.allowed,
          text: r.allowed ? `${label} → ${dst} allowed${rule ? ` by ${rule} (line ${r.rule!.line})` : ": the policy allows everything"}` : `${label} → ${dst} denied: no rule allows it`,
        };
      } catch (e) {
        preview.error = (e as Error).message;
      }
    }
    const { policy } = await c.policies.current();
    const sources = [
      ...topology.users.map((x) => ({ value: x.email, label: x.name, group: "Users" })),
      ...[...policy.groups.keys()].map((g) => ({ value: g, label: g, group: "Groups" })),
      ...[...policy.tagOwners.keys()].map((t) => ({ value: t, label: t, group: "Tags" })),
      ...Object.keys(topology.nodes)
        .slice(0, 500)
        .map((n) => ({ value: n, label: n, group: "Machines" })),
    ];
    const editParam = u.searchParams.get("ssh");
    const editing = o.editing !== undefined ? o.editing : editParam !== null && /^\d{1,4}$/.test(editParam) ? Number(editParam) : null;
    const facts: AclPageFacts = { text: o.text ?? cur.policy, version: cur.version, error: o.error ?? null, preview, sources, editing, sshError: o.sshError ?? null };
    sendHtml(res, o.status ?? 200, consolePage(v, "/admin/acls", "Access controls", aclBody(v, facts), { flash: flash(u) }));
  };
  const logsPage = async (res: ServerResponse, v: Viewer, u: URL) => {
    const before = u.searchParams.get("before");
    const page = await c.audit.list({ before: before && /^\d{1,15}$/.test(before) ? Number(before) : undefined, limit: 50 });
    sendHtml(res, 200, consolePage(v, "/admin/logs", "Logs", logsBody(page, c.ctx.now())));
  };

  // --- changes ------------------------------------------------------------------------
  /** Saves a new policy text (validated like `policy set`) and records the diff. */
  const savePolicy = async (s: Session, text: string) => {
    const old = await c.policies.get();
    const r = await c.policies.set(text);
    await c.audit.record(s.actor, "policy.set", `version ${r.version}`, { from: old.version, to: r.version, diff: policyDiff(old.policy, text) });
  };

  const nodeAction = async (s: Session, id: number, action: string, f: URLSearchParams) => {
    const ref = String(id);
    const before = await c.nodes.get(ref);
    let details: Record<string, unknown> = { id };
    switch (action) {
      case "approve":
        await c.nodes.approve(ref);
        break;
      case "expire":
        await c.nodes.expire(ref);
        break;
      case "disable-expiry":
        await c.nodes.disableExpiry(ref);
        break;
      case "enable-expiry":
        await c.nodes.enableExpiry(ref);
        break;
      case "rename": {
        const n = await c.nodes.rename(ref, (f.get("name") ?? "").trim());
        details = { id, from: before.given_name, to: n.name };
        break;
      }
      case "tags": {
        const tags = (f.get("tags") ?? "").split(",").map((t) => t.trim()).filter(Boolean);
        const n = await c.nodes.setTags(ref, tags);
        details = { id, tags: n.tags };
        break;
      }
      case "routes": {
        const routes = f.getAll("route");
        const n = await c.nodes.approveRoutes(ref, routes, "replace");
        details = { id, approved: n.approvedRoutes };
        break;
      }
      case "delete":
        await c.nodes.delete(ref);
        break;
      default:
        throw new ControlError("not_found", `no such machine action: ${action}`, 404);
    }
    await c.audit.record(s.actor, `node.${action}`, before.given_name, details);
  };

  const handlePost = async (req: IncomingMessage, res: ServerResponse, u: URL, s: Session) => {
    const path = u.pathname;
    const v = s.viewer;
    const f = await form(req);
    if (!c.sessions.verify(`csrf:${s.id}`, f.get("csrf") ?? "")) throw new ForbiddenError("your form expired or did not come from this console; reload the page and try again", "csrf_failed");
    if (!v.admin) throw new ForbiddenError(`only admins can change the tailnet; ${v.login} is a ${v.role}`);

    const m = /^\/admin\/machines\/(\d{1,15})\/([a-z-]+)$/.exec(path);
    if (m) {
      const id = Number(m[1]);
      try {
        await nodeAction(s, id, m[2]!, f);
      } catch (e) {
        if (!(e instanceof ControlError) || e.status >= 500) throw e;
        return machinePage(res, v, id, { error: e.message, status: e.status });
      }
      return redirect(res, m[2] === "delete" ? "/admin/machines?done=delete" : `/admin/machines/${id}?done=${m[2]}`);
    }
    const usersCatch = async (fn: () => Promise<string>) => {
      try {
        redirect(res, `/admin/users?done=${await fn()}`);
      } catch (e) {
        if (!(e instanceof ControlError) || e.status >= 500) throw e;
        await usersPage(res, v, { error: e.message, status: e.status });
      }
    };
    if (path === "/admin/users") {
      return usersCatch(async () => {
        const opt = (k: string) => (f.get(k) ?? "").trim() || undefined;
        const user = await c.users.create({ name: (f.get("name") ?? "").trim(), email: opt("email"), password: f.get("password") || undefined, role: opt("role") });
        await c.audit.record(s.actor, "user.create", user.name, { role: user.role, email: user.email });
        return "user-create";
      });
    }
    const um = /^\/admin\/users\/([^/]{1,128})\/(role|delete)$/.exec(path);
    if (um) {
      const name = decodePathParam(um[1]!, `user name in ${path}`);
      return usersCatch(async () => {
        if (um[2] === "role") {
          const user = await c.users.setRole(name, f.get("role") ?? "");
          await c.audit.record(s.actor, "user.set-role", user.name, { role: user.role });
          return "user-role";
        }
        await c.users.delete(name);
        await c.audit.record(s.actor, "user.delete", name);
        return "user-delete";
      });
    }
    const settingsCatch = async (fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        if (!(e instanceof ControlError) || e.status >= 500) throw e;
        await settingsPage(res, v, { error: e.message, status: e.status });
      }
    };
    const days = (max: number) => {
      const d = (f.get("expiryDays") ?? "").trim();
      if (!/^\d{1,4}$/.test(d)) throw new ValidationError(`expiry: ${JSON.stringify(d)} is not a number of days (1–${max})`);
      return parseDuration(`${d}d`, "expiry");
    };
    if (path === "/admin/settings/keys") {
      return settingsCatch(async () => {
        const tags = (f.get("tags") ?? "").split(",").map((t) => t.trim()).filter(Boolean);
        const r = await c.authKeys.create({
          user: (f.get("user") ?? "").trim() || undefined,
          reusable: f.get("reusable") === "1",
          ephemeral: f.get("ephemeral") === "1",
          preapproved: f.get("preapproved") === "1",
          tags,
          expiryMs: days(90),
          createdBy: s.actor.actor,
        });
        const k = r.authKey;
        await c.audit.record(s.actor, "authkey.create", k.prefix, { user: k.user, tags: k.tags, reusable: k.reusable, ephemeral: k.ephemeral, preapproved: k.preapproved, expiresAt: k.expiresAt });
        await settingsPage(res, v, { flash: `Auth key ${k.prefix} generated.`, created: secretOnce("New auth key", r.key, "new-key") });
      });
    }
    if (path === "/admin/settings/apikeys") {
      return settingsCatch(async () => {
        const r = await c.apiKeys.create((f.get("description") ?? "").trim() || undefined, days(365), undefined, { userId: s.actor.userId });
        await c.audit.record(s.actor, "apikey.create", r.apiKey.prefix, { description: r.apiKey.description, expiresAt: r.apiKey.expiresAt });
        await settingsPage(res, v, { flash: `API key ${r.apiKey.prefix} generated.`, created: secretOnce("New API key", r.key, "new-apikey") });
      });
    }
    const km = /^\/admin\/settings\/(keys|apikeys)\/(\d{1,15})\/revoke$/.exec(path);
    if (km) {
      return settingsCatch(async () => {
        if (km[1] === "keys") {
          const k = await c.authKeys.revoke(km[2]!);
          await c.audit.record(s.actor, "authkey.revoke", k.prefix);
        } else {
          await c.apiKeys.revoke(km[2]!);
          await c.audit.record(s.actor, "apikey.revoke", km[2]!);
        }
        redirect(res, `/admin/settings?done=${km[1] === "keys" ? "key-revoke" : "apikey-revoke"}`);
      });
    }
    if (path === "/admin/acls") {
      const text = (f.get("policy") ?? "").replace(/\r\n/g, "\n");
      try {
        await savePolicy(s, text);
      } catch (e) {
        if (!(e instanceof ControlError) || e.status >= 500) throw e;
        const pos = e instanceof PolicyRejectedError ? { line: e.line, column: e.column } : { line: 0, column: 0 };
        return aclPage(res, v, new URL("http://x/admin/acls"), { text, error: { message: e.message, ...pos }, status: e.status });
      }
      return redirect(res, "/admin/acls?done=policy");
    }
    const sshDel = /^\/admin\/acls\/ssh\/(\d{1,4})\/delete$/.exec(path);
    if (path === "/admin/acls/ssh" || sshDel) {
      const idxText = sshDel ? sshDel[1]! : (f.get("index") ?? "");
      const index = /^\d{1,4}$/.test(idxText) ? Number(idxText) : undefined;
      try {
        const cur = (await c.policies.get()).policy;
        const next = sshDel ? deleteSshRule(cur, index!) : putSshRule(cur, readSshForm(f), index);
        await savePolicy(s, next);
      } catch (e) {
        if (!(e instanceof ControlError) || e.status >= 500) throw e;
        return aclPage(res, v, new URL("http://x/admin/acls"), { sshError: e.message, editing: sshDel ? null : (index ?? null), status: e.status });
      }
      return redirect(res, `/admin/acls?done=${sshDel ? "ssh-delete" : index !== undefined ? "ssh-save" : "ssh-add"}#ssh`);
    }
    throw new ControlError("not_found", `no such page: ${path}`, 404);
  };

  return async (req, res, u) => {
    const path = u.pathname;
    if (path !== "/admin" && !path.startsWith("/admin/")) return false;
    if (req.method === "GET" && path === "/admin/static/console.css") return sendAsset(res, "text/css; charset=utf-8", CONSOLE_CSS), true;
    if (req.method === "GET" && path === "/admin/static/console.js") return sendAsset(res, "text/javascript; charset=utf-8", CONSOLE_JS), true;
    const s = await session(req);
    if (!s) {
      if (req.method !== "GET" && req.method !== "HEAD") {
        req.resume();
        sendHtml(res, 401, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in</title></head><body><main><p>Your session has ended. <a href="/login?next=/admin">Log in again</a>.</p></main></body></html>`);
        return true;
      }
      redirect(res, `/login?next=${encodeURIComponent(path === "/admin" ? "/admin/machines" : path)}`);
      return true;
    }
    const v = s.viewer;
    try {
      if (req.method === "POST") {
        await handlePost(req, res, u, s);
        return true;
      }
      if (req.method !== "GET" && req.method !== "HEAD") throw new ControlError("method_not_allowed", `${req.method} is not allowed on ${path}`, 405);
      if (path === "/admin" || path === "/admin/") redirect(res, "/admin/machines");
      else if (path === "/admin/machines") await machinesPage(res, v, u);
      else if (/^\/admin\/machines\/\d{1,15}$/.test(path)) await machinePage(res, v, Number(path.slice("/admin/machines/".length)), { flash: flash(u) });
      else if (path === "/admin/users") await usersPage(res, v, { flash: flash(u) });
      else if (path === "/admin/settings") await settingsPage(res, v, { flash: flash(u) });
      else if (path === "/admin/acls") await aclPage(res, v, u);
      else if (path === "/admin/dns") sendHtml(res, 200, consolePage(v, "/admin/dns", "DNS", dnsBody(await domain())));
      else if (path === "/admin/logs") await logsPage(res, v, u);
      else sendHtml(res, 404, consolePage(v, "", "Not found", `<p>No such page: ${esc(path)}</p>`));
    } catch (e) {
      if (!(e instanceof ControlError) || e.status >= 500 || res.headersSent) throw e;
      if (req.method === "POST") req.resume();
      sendHtml(res, e.status, consolePage(v, "", e.status === 403 ? "Forbidden" : "Error", `<p class="err" role="alert">${esc(e.message)}</p>`));
    }
    return true;
  };
}
