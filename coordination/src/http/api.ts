/**
 * The REST API under /api/v1: the same operations as the admin CLI. Served on the main
 * listener (Bearer API keys) and on the admin unix socket (trusted by file permissions).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { Control } from "../app.js";
import { ControlError, NotFoundError, ValidationError } from "../errors.js";
import type { NodeView } from "../services/nodes.js";
import { parseDuration } from "../duration.js";
import { readBody, readJson, sendJson } from "./json.js";
import { decodePathParam } from "./decode.js";
import { SOCKET_PRINCIPAL, type ApiPrincipal } from "../services/apikeys.js";
import { policyDiff, textDiff, type AuditActor } from "../services/audit.js";
import { requestUrl } from "./decode.js";
import { OPENAPI } from "./openapi.js";

const CreateUser = z.strictObject({
  name: z.string(),
  password: z.string().optional(),
  email: z.string().optional(),
  displayName: z.string().optional(),
  role: z.string().optional(),
});
const SetRole = z.strictObject({ role: z.string() });
const UserName = z.strictObject({ name: z.string() });
const UserEmail = z.strictObject({ email: z.string().nullable() });
const UserPassword = z.strictObject({ password: z.string() });
const CreateKey = z.strictObject({
  user: z.string().optional(),
  reusable: z.boolean().optional(),
  ephemeral: z.boolean().optional(),
  preapproved: z.boolean().optional(),
  tags: z.array(z.string()).optional(),
  expiry: z.string().optional(),
});
const CreateApiKey = z.strictObject({ description: z.string().optional(), expiry: z.string().optional(), user: z.string().optional() });
const Tags = z.strictObject({ tags: z.array(z.string()) });
const Rename = z.strictObject({ name: z.string() });
const Routes = z.strictObject({ routes: z.array(z.string()).max(1000), mode: z.enum(["add", "remove", "replace"]).optional() });
const PolicyBody = z.strictObject({ policy: z.string() });
const Empty = z.strictObject({});

/** The admin socket as an audit actor. */
export const SOCKET_ACTOR: AuditActor = Object.freeze({ actor: "admin-socket", userId: null, source: "admin-socket" });

/**
 * `since` of the audit queries: an ISO 8601 date/time, or a duration back from now
 * (`24h`, `7d`). Returns ms since the epoch.
 * @throws {ValidationError} naming the value.
 */
export function parseSince(v: string, now: number): number {
  if (/^\d+(ms|s|m|h|d)$/.test(v)) return now - parseDuration(v, "since");
  const t = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(t)) throw new ValidationError(`since: ${JSON.stringify(v)} is neither a date (2026-01-31, 2026-01-31T12:00:00Z) nor a duration (24h, 7d)`);
  return t;
}

/** What a successful change writes to the audit log. */
interface AuditNote {
  action: string;
  target: string;
  details?: Record<string, unknown>;
}

type Handler = (req: IncomingMessage, params: string[], caller: ApiPrincipal, actor: AuditActor) => Promise<{ status?: number; body: unknown; audit?: AuditNote; raw?: { type: string; text: string } }>;

/** Media type of a policy sent or asked for as its huJSON text (comments and formatting kept). */
export const HUJSON_TYPE = "application/hujson";

const isHujson = (v: string | string[] | undefined) => String(v ?? "").toLowerCase().includes(HUJSON_TYPE);

/** The policy text of a PUT/check body: raw huJSON (`Content-Type: application/hujson`) or `{policy}`. */
async function policyText(req: IncomingMessage): Promise<string> {
  if (isHujson(req.headers["content-type"])) return (await readBody(req)).toString("utf8");
  return (await readJson(req, PolicyBody)).policy;
}

/**
 * The DNS document of a PUT body: raw JSON/huJSON text with `Content-Type:
 * application/hujson`, else a JSON document (an empty body is refused, never read as `{}`).
 */
async function dnsBody(req: IncomingMessage): Promise<{ value: unknown; text: boolean }> {
  const text = (await readBody(req)).toString("utf8");
  if (isHujson(req.headers["content-type"])) return { value: text, text: true };
  if (text.trim() === "") throw new ValidationError("body: empty; send the DNS settings document (see GET /api/v1/dns)", "bad_json");
  try {
    return { value: JSON.parse(text), text: false };
  } catch (e) {
    throw new ValidationError(`body is not valid JSON: ${(e as Error).message}`, "bad_json");
  }
}

const pretty = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

/**
 * Builds the API request handler; returns false when the path is not an API path.
 * `caller` is who the request acts for (default: the admin socket); every route is an
 * administrative operation, so the caller was checked to be an owner/admin (or an admin
 * key) by {@link ApiKeyService.verify} before this runs.
 */
export function createApiHandler(
  control: Control,
): (req: IncomingMessage, res: ServerResponse, path: string, caller?: ApiPrincipal, actor?: AuditActor) => Promise<boolean> {
  const c = control;
  const nodeChange = (action: string, details: Record<string, unknown>, node: NodeView) => ({ body: { node }, audit: { action, target: node.name, details: { id: node.id, ...details } } });
  const seg = "([^/]+)";
  const routes: Route[] = [
    { method: "GET", pattern: /^\/users$/, handler: async () => ({ body: { users: await c.users.list() } }) },
    { method: "POST", pattern: /^\/users$/, handler: async (req) => {
      const user = await c.users.create(await readJson(req, CreateUser));
      return { status: 201, body: { user }, audit: { action: "user.create", target: user.name, details: { role: user.role, email: user.email } } };
    } },
    { method: "POST", pattern: new RegExp(`^/users/${seg}/role$`), handler: async (req, [name]) => {
      const user = await c.users.setRole(name!, (await readJson(req, SetRole)).role);
      return { body: { user }, audit: { action: "user.set-role", target: user.name, details: { role: user.role } } };
    } },
    { method: "POST", pattern: new RegExp(`^/users/${seg}/rename$`), handler: async (req, [name]) => {
      const user = await c.users.update(name!, { name: (await readJson(req, UserName)).name });
      return { body: { user }, audit: { action: "user.rename", target: user.name, details: { from: name } } };
    } },
    { method: "POST", pattern: new RegExp(`^/users/${seg}/email$`), handler: async (req, [name]) => {
      const user = await c.users.update(name!, { email: (await readJson(req, UserEmail)).email });
      return { body: { user }, audit: { action: "user.set-email", target: user.name, details: { email: user.email } } };
    } },
    { method: "POST", pattern: new RegExp(`^/users/${seg}/password$`), handler: async (req, [name]) => {
      const user = await c.users.update(name!, { password: (await readJson(req, UserPassword)).password });
      return { body: { user }, audit: { action: "user.passwd", target: user.name } };
    } },
    {
      method: "DELETE",
      pattern: new RegExp(`^/users/${seg}$`),
      handler: async (_r, [name]) => {
        await c.users.delete(name!);
        return { body: { deleted: name }, audit: { action: "user.delete", target: name! } };
      },
    },
    { method: "GET", pattern: /^\/keys$/, handler: async () => ({ body: { keys: await c.authKeys.list() } }) },
    {
      method: "POST",
      pattern: /^\/keys$/,
      handler: async (req, _p, _caller, actor) => {
        const b = await readJson(req, CreateKey);
        const res = await c.authKeys.create({ ...b, expiryMs: b.expiry !== undefined ? parseDuration(b.expiry, "expiry") : undefined, createdBy: actor.actor });
        const k = res.authKey;
        return { status: 201, body: res, audit: { action: "authkey.create", target: k.prefix, details: { user: k.user, tags: k.tags, reusable: k.reusable, ephemeral: k.ephemeral, preapproved: k.preapproved, expiresAt: k.expiresAt } } };
      },
    },
    { method: "POST", pattern: new RegExp(`^/keys/${seg}/revoke$`), handler: async (req, [id]) => {
      await readJson(req, Empty);
      const already = (await c.authKeys.get(id!)).revoked;
      const key = await c.authKeys.revoke(id!);
      return { body: { key, alreadyRevoked: already }, ...(already ? {} : { audit: { action: "authkey.revoke", target: key.prefix } }) };
    } },
    { method: "POST", pattern: new RegExp(`^/keys/${seg}/delete$`), handler: async (req, [id]) => {
      await readJson(req, Empty);
      const key = await c.authKeys.delete(id!);
      return { body: { deleted: key }, audit: { action: "authkey.delete", target: key.prefix } };
    } },
    { method: "DELETE", pattern: new RegExp(`^/keys/${seg}$`), handler: async (_r, [id]) => {
      const key = await c.authKeys.revoke(id!);
      return { body: { key }, audit: { action: "authkey.revoke", target: key.prefix } };
    } },
    { method: "GET", pattern: /^\/nodes$/, handler: async () => ({ body: { nodes: await c.nodes.list() } }) },
    { method: "GET", pattern: new RegExp(`^/nodes/${seg}$`), handler: async (_r, [ref]) => ({ body: { node: await c.nodes.view(await c.nodes.get(ref!)) } }) },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/approve$`), handler: async (req, [ref]) => {
      await readJson(req, Empty);
      const already = !!(await c.nodes.get(ref!)).approved;
      const n = await c.nodes.approve(ref!);
      return already ? { body: { node: n, alreadyApproved: true } } : nodeChange("node.approve", {}, n);
    } },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/expire$`), handler: async (req, [ref]) => nodeChange("node.expire", await readJson(req, Empty), await c.nodes.expire(ref!)) },
    {
      method: "POST",
      pattern: new RegExp(`^/nodes/${seg}/disable-expiry$`),
      handler: async (req, [ref]) => nodeChange("node.disable-expiry", await readJson(req, Empty), await c.nodes.disableExpiry(ref!)),
    },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/tags$`), handler: async (req, [ref]) => {
      const n = await c.nodes.setTags(ref!, (await readJson(req, Tags)).tags);
      return nodeChange("node.tags", { tags: n.tags }, n);
    } },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/routes$`), handler: async (req, [ref]) => {
      const b = await readJson(req, Routes);
      const n = await c.nodes.approveRoutes(ref!, b.routes, b.mode);
      return nodeChange("node.routes", { routes: b.routes, mode: b.mode ?? "replace", approved: n.approvedRoutes }, n);
    } },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/rename$`), handler: async (req, [ref]) => {
      const before = await c.nodes.get(ref!);
      const n = await c.nodes.rename(ref!, (await readJson(req, Rename)).name);
      return nodeChange("node.rename", { from: before.given_name, to: n.name }, n);
    } },
    {
      method: "DELETE",
      pattern: new RegExp(`^/nodes/${seg}$`),
      handler: async (_r, [ref]) => {
        const n = await c.nodes.get(ref!);
        await c.nodes.delete(ref!);
        return { body: { deleted: ref }, audit: { action: "node.delete", target: n.given_name, details: { id: n.id } } };
      },
    },
    { method: "GET", pattern: /^\/policy$/, handler: async (req) => {
      const p = await c.policies.get();
      return isHujson(req.headers.accept) ? { body: null, raw: { type: `${HUJSON_TYPE}; charset=utf-8`, text: p.policy } } : { body: p };
    } },
    { method: "PUT", pattern: /^\/policy$/, handler: async (req) => {
      const text = await policyText(req);
      const old = await c.policies.get();
      const r = await c.policies.set(text);
      return { body: r, audit: { action: "policy.set", target: `version ${r.version}`, details: { from: old.version, to: r.version, diff: policyDiff(old.policy, text) } } };
    } },
    {
      method: "POST",
      pattern: /^\/policy\/check$/,
      handler: async (req) => {
        await c.policies.check(await policyText(req));
        return { body: { ok: true } };
      },
    },
    { method: "GET", pattern: /^\/dns$/, handler: async () => ({ body: await c.dns.get() }) },
    { method: "PUT", pattern: /^\/dns$/, handler: async (req) => {
      const b = await dnsBody(req);
      const r = await c.dns.set(b.value, b.text);
      const details = { tailnetDomain: r.dns.tailnetDomain, ...(r.domainChanged ? { domainFrom: r.previous.tailnetDomain } : {}), diff: textDiff("dns", pretty(r.previous), pretty(r.dns)) };
      return { body: r.dns, audit: { action: "dns.set", target: r.dns.tailnetDomain, details } };
    } },
    {
      method: "GET",
      pattern: /^\/audit$/,
      handler: async (req) => {
        const q = requestUrl(req).searchParams;
        const num = (k: string) => {
          const v = q.get(k);
          if (v === null) return undefined;
          if (!/^\d{1,15}$/.test(v)) throw new ValidationError(`${k}: ${JSON.stringify(v)} is not a number`);
          return Number(v);
        };
        const since = q.get("since");
        return { body: await c.audit.list({ before: num("before"), limit: num("limit"), since: since === null ? undefined : parseSince(since, c.ctx.now()) }) };
      },
    },
    { method: "GET", pattern: /^\/apikeys$/, handler: async () => ({ body: { apiKeys: await c.apiKeys.list() } }) },
    {
      method: "POST",
      pattern: /^\/apikeys$/,
      handler: async (req, _p, caller) => {
        const b = await readJson(req, CreateApiKey);
        const r = await c.apiKeys.create(b.description, b.expiry !== undefined ? parseDuration(b.expiry, "expiry") : undefined, b.user, caller);
        return { status: 201, body: r, audit: { action: "apikey.create", target: r.apiKey.prefix, details: { description: r.apiKey.description, expiresAt: r.apiKey.expiresAt } } };
      },
    },
    {
      method: "DELETE",
      pattern: new RegExp(`^/apikeys/${seg}$`),
      handler: async (_r, [id]) => {
        await c.apiKeys.revoke(id!);
        return { body: { revoked: id }, audit: { action: "apikey.revoke", target: id! } };
      },
    },
  ];

  return async (req, res, path, caller = SOCKET_PRINCIPAL, actor = SOCKET_ACTOR) => {
    if (!path.startsWith("/api/v1/") && path !== "/api/v1") return false;
    if (path === "/api/v1/openapi.json" && req.method === "GET") {
      sendJson(res, 200, OPENAPI);
      return true;
    }
    const sub = path.slice("/api/v1".length) || "/";
    let pathMatched = false;
    for (const r of routes) {
      const m = r.pattern.exec(sub);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== req.method) continue;
      const params = m.slice(1).map((p, i) => decodePathParam(p, `#${i + 1} of ${path}`));
      const out = await r.handler(req, params, caller, actor);
      if (out.audit) await c.audit.record(actor, out.audit.action, out.audit.target, out.audit.details);
      if (out.raw) {
        const data = Buffer.from(out.raw.text);
        res.writeHead(out.status ?? 200, { "content-type": out.raw.type, "content-length": data.length, "cache-control": "no-store" });
        res.end(data);
      } else sendJson(res, out.status ?? 200, out.body);
      return true;
    }
    if (pathMatched) throw new ControlError("method_not_allowed", `${req.method} is not allowed on ${path}`, 405);
    throw new NotFoundError("route", path);
  };
}
