/**
 * The REST API's OpenAPI 3.1 description, served at `GET /api/v1/openapi.json` (no key
 * needed). Kept next to the routes of ./api.ts; a test checks that every route is in it.
 */

type Op = { summary: string; body?: string; raw?: boolean };

const json = (ref: string) => ({ "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } });

function op(o: Op, params: string[]): Record<string, unknown> {
  return {
    summary: o.summary,
    ...(params.length ? { parameters: params.map((name) => ({ name, in: "path", required: true, schema: { type: "string" } })) } : {}),
    ...(o.body
      ? { requestBody: { required: true, content: { ...json(o.body), ...(o.raw ? { "application/hujson": { schema: { type: "string" } } } : {}) } } }
      : {}),
    responses: {
      "200": { description: "OK", content: { "application/json": { schema: { type: "object" } }, ...(o.raw ? { "application/hujson": { schema: { type: "string" } } } : {}) } },
      "4XX": { description: "Error", content: json("Error") },
    },
  };
}

/** [method, path, operation] of every route. */
export const API_ROUTES: [string, string, Op][] = [
  ["get", "/users", { summary: "List users" }],
  ["post", "/users", { summary: "Create a user", body: "CreateUser" }],
  ["post", "/users/{name}/role", { summary: "Set a user's role", body: "Role" }],
  ["post", "/users/{name}/rename", { summary: "Rename a user", body: "Name" }],
  ["post", "/users/{name}/email", { summary: "Set or remove (null) a user's e-mail", body: "Email" }],
  ["post", "/users/{name}/password", { summary: "Set a user's password (ends their web sessions)", body: "Password" }],
  ["delete", "/users/{name}", { summary: "Delete a user who owns no nodes" }],
  ["get", "/keys", { summary: "List auth keys (never the secrets)" }],
  ["post", "/keys", { summary: "Create an auth key (the secret is answered once)", body: "CreateKey" }],
  ["post", "/keys/{id}/revoke", { summary: "Revoke an auth key by id or prefix", body: "Empty" }],
  ["post", "/keys/{id}/delete", { summary: "Delete an auth key by id or prefix", body: "Empty" }],
  ["delete", "/keys/{id}", { summary: "Revoke an auth key by id or prefix" }],
  ["get", "/nodes", { summary: "List nodes" }],
  ["get", "/nodes/{node}", { summary: "One node (by id, name, FQDN or node key)" }],
  ["delete", "/nodes/{node}", { summary: "Delete a node" }],
  ["post", "/nodes/{node}/approve", { summary: "Approve a node", body: "Empty" }],
  ["post", "/nodes/{node}/expire", { summary: "Expire a node's key", body: "Empty" }],
  ["post", "/nodes/{node}/disable-expiry", { summary: "Disable a node's key expiry", body: "Empty" }],
  ["post", "/nodes/{node}/tags", { summary: "Set a node's tags", body: "Tags" }],
  ["post", "/nodes/{node}/rename", { summary: "Rename a node", body: "Name" }],
  ["post", "/nodes/{node}/routes", { summary: "Approve routes (mode add, remove or replace)", body: "Routes" }],
  ["get", "/policy", { summary: "The policy ({version, policy, updatedAt}, or the raw text with Accept: application/hujson)", raw: true }],
  ["put", "/policy", { summary: "Validate and save a policy ({policy} or the raw huJSON text)", body: "Policy", raw: true }],
  ["post", "/policy/check", { summary: "Validate a policy without saving it", body: "Policy", raw: true }],
  ["get", "/dns", { summary: "The tailnet's DNS settings (tailnetDomain, nameservers, splitDNS, searchPaths, preferences)" }],
  ["put", "/dns", { summary: "Validate and replace the DNS settings (the document, or its JSON/huJSON text with Content-Type: application/hujson)", body: "Dns", raw: true }],
  ["get", "/apikeys", { summary: "List API keys (never the secrets)" }],
  ["post", "/apikeys", { summary: "Create an API key (the secret is answered once)", body: "CreateApiKey" }],
  ["delete", "/apikeys/{id}", { summary: "Revoke an API key by id or prefix" }],
  ["get", "/audit", { summary: "Audit log, newest first; query since (date or duration), before (cursor), limit (1-500)" }],
];

const str = { type: "string" };
const bool = { type: "boolean" };

/** The document. */
export const OPENAPI = {
  openapi: "3.1.0",
  info: { title: "Lattice control REST API", version: "1" },
  servers: [{ url: "/api/v1" }],
  security: [{ bearer: [] }, { basic: [] }],
  paths: API_ROUTES.reduce<Record<string, Record<string, unknown>>>((acc, [method, path, o]) => {
    const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    (acc[path] ??= {})[method] = op(o, params);
    return acc;
  }, {}),
  components: {
    securitySchemes: {
      bearer: { type: "http", scheme: "bearer", description: "Authorization: Bearer lapi-…" },
      basic: { type: "http", scheme: "basic", description: "the API key as user name, empty password (curl -u KEY:)" },
    },
    schemas: {
      Error: { type: "object", properties: { error: { type: "object", properties: { code: str, message: str } } } },
      Empty: { type: "object", additionalProperties: false },
      CreateUser: { type: "object", additionalProperties: false, required: ["name"], properties: { name: str, password: str, email: str, displayName: str, role: { enum: ["owner", "admin", "member"] } } },
      Role: { type: "object", additionalProperties: false, required: ["role"], properties: { role: { enum: ["owner", "admin", "member"] } } },
      Name: { type: "object", additionalProperties: false, required: ["name"], properties: { name: str } },
      Email: { type: "object", additionalProperties: false, required: ["email"], properties: { email: { type: ["string", "null"] } } },
      Password: { type: "object", additionalProperties: false, required: ["password"], properties: { password: str } },
      CreateKey: { type: "object", additionalProperties: false, properties: { user: str, reusable: bool, ephemeral: bool, preapproved: bool, tags: { type: "array", items: str }, expiry: str } },
      Tags: { type: "object", additionalProperties: false, required: ["tags"], properties: { tags: { type: "array", items: str } } },
      Routes: { type: "object", additionalProperties: false, required: ["routes"], properties: { routes: { type: "array", items: str }, mode: { enum: ["add", "remove", "replace"] } } },
      Policy: { type: "object", additionalProperties: false, required: ["policy"], properties: { policy: str } },
      Dns: {
        type: "object",
        additionalProperties: false,
        properties: {
          tailnetDomain: str,
          nameservers: { type: "array", maxItems: 16, items: { $ref: "#/components/schemas/DnsResolver" } },
          splitDNS: { type: "object", maxProperties: 256, additionalProperties: { type: ["array", "null"], maxItems: 16, items: { $ref: "#/components/schemas/DnsResolver" } } },
          searchPaths: { type: "array", maxItems: 32, items: str },
          preferences: { type: "object", additionalProperties: false, properties: { magicDNS: bool, overrideLocalDNS: bool } },
        },
      },
      DnsResolver: { oneOf: [str, { type: "object", additionalProperties: false, required: ["address"], properties: { address: str, useWithExitNode: bool } }] },
      CreateApiKey: { type: "object", additionalProperties: false, properties: { description: str, expiry: str, user: str } },
    },
  },
} as const;
