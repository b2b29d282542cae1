/**
 * The REST API under /api/v1: the same operations as the admin CLI. Served on the main
 * listener (Bearer API keys) and on the admin unix socket (trusted by file permissions).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { Control } from "../app.js";
import { ControlError, NotFoundError } from "../errors.js";
import { parseDuration } from "../duration.js";
import { readJson, sendJson } from "./json.js";
import { decodePathParam } from "./decode.js";
import { SOCKET_PRINCIPAL, type ApiPrincipal } from "../services/apikeys.js";

const CreateUser = z.strictObject({
  name: z.string(),
  password: z.string().optional(),
  email: z.string().optional(),
  displayName: z.string().optional(),
  role: z.string().optional(),
});
const SetRole = z.strictObject({ role: z.string() });
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

type Handler = (req: IncomingMessage, params: string[], caller: ApiPrincipal) => Promise<{ status?: number; body: unknown }>;

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
export function createApiHandler(control: Control): (req: IncomingMessage, res: ServerResponse, path: string, caller?: ApiPrincipal) => Promise<boolean> {
  const c = control;
  const seg = "([^/]+)";
  const routes: Route[] = [
    { method: "GET", pattern: /^\/users$/, handler: async () => ({ body: { users: await c.users.list() } }) },
    { method: "POST", pattern: /^\/users$/, handler: async (req) => ({ status: 201, body: { user: await c.users.create(await readJson(req, CreateUser)) } }) },
    { method: "POST", pattern: new RegExp(`^/users/${seg}/role$`), handler: async (req, [name]) => ({ body: { user: await c.users.setRole(name!, (await readJson(req, SetRole)).role) } }) },
    {
      method: "DELETE",
      pattern: new RegExp(`^/users/${seg}$`),
      handler: async (_r, [name]) => {
        await c.users.delete(name!);
        return { body: { deleted: name } };
      },
    },
    { method: "GET", pattern: /^\/keys$/, handler: async () => ({ body: { keys: await c.authKeys.list() } }) },
    {
      method: "POST",
      pattern: /^\/keys$/,
      handler: async (req) => {
        const b = await readJson(req, CreateKey);
        const res = await c.authKeys.create({ ...b, expiryMs: b.expiry !== undefined ? parseDuration(b.expiry, "expiry") : undefined });
        return { status: 201, body: res };
      },
    },
    { method: "POST", pattern: new RegExp(`^/keys/${seg}/revoke$`), handler: async (req, [id]) => (await readJson(req, Empty), { body: { key: await c.authKeys.revoke(id!) } }) },
    { method: "DELETE", pattern: new RegExp(`^/keys/${seg}$`), handler: async (_r, [id]) => ({ body: { key: await c.authKeys.revoke(id!) } }) },
    { method: "GET", pattern: /^\/nodes$/, handler: async () => ({ body: { nodes: await c.nodes.list() } }) },
    { method: "GET", pattern: new RegExp(`^/nodes/${seg}$`), handler: async (_r, [ref]) => ({ body: { node: await c.nodes.view(await c.nodes.get(ref!)) } }) },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/approve$`), handler: async (req, [ref]) => (await readJson(req, Empty), { body: { node: await c.nodes.approve(ref!) } }) },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/expire$`), handler: async (req, [ref]) => (await readJson(req, Empty), { body: { node: await c.nodes.expire(ref!) } }) },
    {
      method: "POST",
      pattern: new RegExp(`^/nodes/${seg}/disable-expiry$`),
      handler: async (req, [ref]) => (await readJson(req, Empty), { body: { node: await c.nodes.disableExpiry(ref!) } }),
    },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/tags$`), handler: async (req, [ref]) => ({ body: { node: await c.nodes.setTags(ref!, (await readJson(req, Tags)).tags) } }) },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/routes$`), handler: async (req, [ref]) => {
      const b = await readJson(req, Routes);
      return { body: { node: await c.nodes.approveRoutes(ref!, b.routes, b.mode) } };
    } },
    { method: "POST", pattern: new RegExp(`^/nodes/${seg}/rename$`), handler: async (req, [ref]) => ({ body: { node: await c.nodes.rename(ref!, (await readJson(req, Rename)).name) } }) },
    {
      method: "DELETE",
      pattern: new RegExp(`^/nodes/${seg}$`),
      handler: async (_r, [ref]) => {
        await c.nodes.delete(ref!);
        return { body: { deleted: ref } };
      },
    },
    { method: "GET", pattern: /^\/policy$/, handler: async () => ({ body: await c.policies.get() }) },
    { method: "PUT", pattern: /^\/policy$/, handler: async (req) => ({ body: await c.policies.set((await readJson(req, PolicyBody)).policy) }) },
    {
      method: "POST",
      pattern: /^\/policy\/check$/,
      handler: async (req) => {
        await c.policies.check((await readJson(req, PolicyBody)).policy);
        return { body: { ok: true } };
      },
    },
    { method: "GET", pattern: /^\/apikeys$/, handler: async () => ({ body: { apiKeys: await c.apiKeys.list() } }) },
    {
      method: "POST",
      pattern: /^\/apikeys$/,
      handler: async (req, _p, caller) => {
        const b = await readJson(req, CreateApiKey);
        return { status: 201, body: await c.apiKeys.create(b.description, b.expiry !== undefined ? parseDuration(b.expiry, "expiry") : undefined, b.user, caller) };
      },
    },
    {
      method: "DELETE",
      pattern: new RegExp(`^/apikeys/${seg}$`),
      handler: async (_r, [id]) => {
        await c.apiKeys.revoke(id!);
        return { body: { revoked: id } };
      },
    },
  ];

  return async (req, res, path, caller = SOCKET_PRINCIPAL) => {
    if (!path.startsWith("/api/v1/") && path !== "/api/v1") return false;
    const sub = path.slice("/api/v1".length) || "/";
    let pathMatched = false;
    for (const r of routes) {
      const m = r.pattern.exec(sub);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== req.method) continue;
      const params = m.slice(1).map((p, i) => decodePathParam(p, `#${i + 1} of ${path}`));
      const out = await r.handler(req, params, caller);
      sendJson(res, out.status ?? 200, out.body);
      return true;
    }
    if (pathMatched) throw new ControlError("method_not_allowed", `${req.method} is not allowed on ${path}`, 405);
    throw new NotFoundError("route", path);
  };
}
