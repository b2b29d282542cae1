/**
 * Server configuration: defaults < config file (JSON, validated, unknown keys are errors)
 * < LATTICE_CONTROL_* environment variables < command-line flags.
 *
 * Defaults: listen 0.0.0.0:8080, db ./lattice.db, socket /var/run/lattice/control.sock,
 * server URL http://<listen host, or 127.0.0.1 for 0.0.0.0>:<port>.
 */
import { parse as parseYaml } from "yaml";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { describeSystemError, StartupError, ValidationError } from "./errors.js";
import { parseDuration } from "./duration.js";
import { formatZodError } from "./http/json.js";
import { LIMIT_ENV_VARS, LimitsFileSchema, resolveListenerLimits, type ListenerLimits } from "./http/limits.js";

/** Default listen address. */
export const DEFAULT_LISTEN = "0.0.0.0:8080";
/** Default database location. */
export const DEFAULT_DB = "./lattice.db";
/** Default admin socket path. */
export { DEFAULT_SOCKET } from "./admin-client.js";
import { DEFAULT_SOCKET } from "./admin-client.js";

/** A positive integer, written as a JSON number or (environment) a decimal string. */
const count = z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d{0,9}$/, "must be a positive integer")]).transform(Number);

const FileSchema = z.strictObject({
  listen: z.string().optional(),
  serverUrl: z.string().optional(),
  db: z.string().optional(),
  /** File holding the PostgreSQL password (kept out of the URL, the process list and the config). */
  dbPasswordFile: z.string().optional(),
  /** Lifetime of a web (console) login session. */
  webSessionTimeout: z.string().optional(),
  socket: z.string().optional(),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  tlsSelfSigned: z.boolean().optional(),
  tailnetDomain: z.string().optional(),
  ephemeralTimeout: z.string().optional(),
  nodeKeyExpiry: z.string().optional(),
  sweepInterval: z.string().optional(),
  derpMap: z.string().optional(),
  /** Do not embed the DERP relay and STUN server (`--no-derp`). */
  noDerp: z.boolean().optional(),
  /** STUN UDP port of the embedded relay; -1 disables STUN. */
  stunPort: z.union([z.number().int(), z.string()]).optional(),
  /** Region id of the embedded relay (900–999). */
  derpRegionId: z.union([z.number().int(), z.string()]).optional(),
  /** Region code of the embedded relay. */
  derpRegionCode: z.string().optional(),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).optional(),
  oidcIssuer: z.string().optional(),
  oidcClientId: z.string().optional(),
  oidcClientSecret: z.string().optional(),
  oidcClientSecretFile: z.string().optional(),
  /** Comma-separated string or a list. */
  oidcAllowedDomains: z.union([z.string(), z.array(z.string())]).optional(),
  /** Comma-separated string or a list of e-mail addresses. */
  oidcAllowedUsers: z.union([z.string(), z.array(z.string())]).optional(),
  oidcOnly: z.boolean().optional(),
  /** Accept database files that group/others may read (default false: refuse to start). */
  allowInsecurePermissions: z.boolean().optional(),
  registrationTimeout: z.string().optional(),
  registrationIdleTimeout: z.string().optional(),
  maxPendingRegistrations: count.optional(),
  maxPendingRegistrationsPerSource: count.optional(),
  maxRegisterRequestBytes: count.optional(),
  maxHostinfoBytes: count.optional(),
  hostinfoMinInterval: z.string().optional(),
  // Listener timeouts and caps (http/limits.ts).
  ...LimitsFileSchema.shape,
});

/** Raw settings from any source (strings as typed). */
export type RawConfig = z.infer<typeof FileSchema>;

/** The resolved configuration of `serve`. */
export interface ServeConfig {
  listenHost: string;
  listenPort: number;
  serverUrl: string;
  db: string;
  /** File with the PostgreSQL password (null: URL, PGPASSWORD or PGPASSFILE). */
  dbPasswordFile: string | null;
  /** Web login session lifetime, ms (default 24 h). */
  webSessionMs: number;
  socket: string;
  tls: { cert: string; key: string } | { selfSigned: true } | null;
  tailnetDomain: string;
  ephemeralTimeoutMs: number;
  nodeKeyExpiryMs: number;
  sweepIntervalMs: number;
  /** Path of a JSON file whose DERP regions are added to the published map (none = only the embedded region). */
  derpMapFile: string | null;
  /** The embedded DERP relay + STUN server; null with `--no-derp`. */
  derp: EmbeddedDerpConfig | null;
  logLevel: string;
  /** OIDC login, when configured (local accounts stay available unless `only`). */
  oidc: OidcConfig | null;
  /** Start even when the SQLite files are group/world-accessible (they hold secrets). */
  allowInsecurePermissions: boolean;
  /** Limits on what unauthenticated and authenticated nodes may make the server keep. */
  nodeLimits: NodeLimits;
  /** Timeouts and caps of every listener. */
  limits: ListenerLimits;
}

/** The relay lattice-control embeds (coordination/README.md "Embedded DERP and STUN"). */
export interface EmbeddedDerpConfig {
  /** Region id published in the DERP map, 900–999 (default 900). */
  regionId: number;
  /** Region code (default "lattice"): lowercase letters, digits and '-', 1–32 characters. */
  regionCode: string;
  /** STUN UDP port (default 3478; 0 = any free port); null = STUN disabled (`--stun-port -1`). */
  stunPort: number | null;
}

/** Default region id and code of the embedded relay. */
export const DEFAULT_DERP_REGION_ID = 900;
export const DEFAULT_DERP_REGION_CODE = "lattice";
/** Default STUN port (RFC 8489 §18.3). */
export const DEFAULT_STUN_PORT = 3478;

/** Limits on registrations and Hostinfo (issue 6 A6, A14); see coordination/README.md. */
export interface NodeLimits {
  /** Lifetime of an interactive registration while its node waits, ms (15 min). */
  registrationTimeoutMs: number;
  /** Lifetime of an interactive registration no node waits on, ms (1 min). */
  registrationIdleMs: number;
  /** Live pending interactive registrations in total (1000). */
  maxPendingRegistrations: number;
  /** Live pending interactive registrations per source address, IPv6 per /64 (20). */
  maxPendingRegistrationsPerSource: number;
  /** Largest `/machine/register` body, bytes (32 KiB). */
  maxRegisterRequestBytes: number;
  /** Largest Hostinfo JSON in any request, bytes (16 KiB). */
  maxHostinfoBytes: number;
  /** Minimum time between two applied Hostinfo changes of one node, ms (5 s). */
  hostinfoMinIntervalMs: number;
}

/** Default {@link NodeLimits}. */
export const DEFAULT_NODE_LIMITS: NodeLimits = {
  registrationTimeoutMs: 15 * 60_000,
  registrationIdleMs: 60_000,
  maxPendingRegistrations: 1000,
  maxPendingRegistrationsPerSource: 20,
  maxRegisterRequestBytes: 32 * 1024,
  maxHostinfoBytes: 16 * 1024,
  hostinfoMinIntervalMs: 5_000,
};

/** Resolved OIDC settings. */
export interface OidcConfig {
  /** Issuer URL (discovery at `<issuer>/.well-known/openid-configuration`). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Lowercase e-mail domains allowed to log in (empty = any). */
  allowedDomains: string[];
  /** Lowercase e-mail addresses allowed to log in (empty = any). */
  allowedUsers: string[];
  /** Hide and refuse the local password login. */
  only: boolean;
}

/** Environment variable → config key. */
export const ENV_VARS: Record<string, keyof RawConfig> = {
  LATTICE_CONTROL_LISTEN: "listen",
  LATTICE_CONTROL_SERVER_URL: "serverUrl",
  LATTICE_CONTROL_DB: "db",
  LATTICE_CONTROL_DB_PASSWORD_FILE: "dbPasswordFile",
  LATTICE_CONTROL_WEB_SESSION_TIMEOUT: "webSessionTimeout",
  LATTICE_CONTROL_SOCKET: "socket",
  LATTICE_CONTROL_TLS_CERT: "tlsCert",
  LATTICE_CONTROL_TLS_KEY: "tlsKey",
  LATTICE_CONTROL_TLS_SELF_SIGNED: "tlsSelfSigned",
  LATTICE_CONTROL_TAILNET_DOMAIN: "tailnetDomain",
  LATTICE_CONTROL_EPHEMERAL_TIMEOUT: "ephemeralTimeout",
  LATTICE_CONTROL_NODE_KEY_EXPIRY: "nodeKeyExpiry",
  LATTICE_CONTROL_SWEEP_INTERVAL: "sweepInterval",
  LATTICE_CONTROL_DERP_MAP: "derpMap",
  LATTICE_CONTROL_NO_DERP: "noDerp",
  LATTICE_CONTROL_STUN_PORT: "stunPort",
  LATTICE_CONTROL_DERP_REGION_ID: "derpRegionId",
  LATTICE_CONTROL_DERP_REGION_CODE: "derpRegionCode",
  LATTICE_CONTROL_LOG_LEVEL: "logLevel",
  LATTICE_CONTROL_OIDC_ISSUER: "oidcIssuer",
  LATTICE_CONTROL_OIDC_CLIENT_ID: "oidcClientId",
  LATTICE_CONTROL_OIDC_CLIENT_SECRET: "oidcClientSecret",
  LATTICE_CONTROL_OIDC_CLIENT_SECRET_FILE: "oidcClientSecretFile",
  LATTICE_CONTROL_OIDC_ALLOWED_DOMAINS: "oidcAllowedDomains",
  LATTICE_CONTROL_OIDC_ALLOWED_USERS: "oidcAllowedUsers",
  LATTICE_CONTROL_OIDC_ONLY: "oidcOnly",
  LATTICE_CONTROL_ALLOW_INSECURE_PERMISSIONS: "allowInsecurePermissions",
  LATTICE_CONTROL_REGISTRATION_TIMEOUT: "registrationTimeout",
  LATTICE_CONTROL_REGISTRATION_IDLE_TIMEOUT: "registrationIdleTimeout",
  LATTICE_CONTROL_MAX_PENDING_REGISTRATIONS: "maxPendingRegistrations",
  LATTICE_CONTROL_MAX_PENDING_REGISTRATIONS_PER_SOURCE: "maxPendingRegistrationsPerSource",
  LATTICE_CONTROL_MAX_REGISTER_REQUEST_BYTES: "maxRegisterRequestBytes",
  LATTICE_CONTROL_MAX_HOSTINFO_BYTES: "maxHostinfoBytes",
  LATTICE_CONTROL_HOSTINFO_MIN_INTERVAL: "hostinfoMinInterval",
  ...LIMIT_ENV_VARS,
};

const BOOLEAN_KEYS = new Set<keyof RawConfig>(["tlsSelfSigned", "oidcOnly", "allowInsecurePermissions", "noDerp"]);

/**
 * Reads and validates a JSON config file.
 * @throws {StartupError} `config_invalid` naming `--config`, the file and the bad key.
 */
export function readConfigFile(path: string): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new StartupError("config_invalid", "--config", path, `cannot read: ${describeSystemError(e)}`);
  }
  let value: unknown;
  // JSON, or YAML (as headscale's config) for .yaml/.yml files and text not starting with "{".
  const yamlFile = /\.ya?ml$/i.test(path) || !text.trimStart().startsWith("{");
  try {
    value = yamlFile ? parseYaml(text, { prettyErrors: true }) : JSON.parse(text);
  } catch (e) {
    throw new StartupError("config_invalid", "--config", path, `not valid ${yamlFile ? "YAML" : "JSON"}: ${(e as Error).message.split("\n")[0]}`);
  }
  const r = FileSchema.safeParse(value);
  if (!r.success) throw new StartupError("config_invalid", "--config", path, formatZodError(r.error, "config"));
  return r.data;
}

/** Reads LATTICE_CONTROL_* variables. */
export function readEnv(env: NodeJS.ProcessEnv): RawConfig {
  const out: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV_VARS)) {
    const v = env[name];
    if (v === undefined || v === "") continue;
    if (BOOLEAN_KEYS.has(key)) {
      if (!/^(1|0|true|false)$/i.test(v)) throw new ValidationError(`${name}: want true or false, got ${JSON.stringify(v)}`);
      out[key] = /^(1|true)$/i.test(v);
    } else out[key] = v;
  }
  const r = FileSchema.safeParse(out);
  if (!r.success) throw new ValidationError(`environment: ${formatZodError(r.error, "env")}`);
  return r.data;
}

const DerpMapSchema = z.looseObject({
  Regions: z.record(
    z.string().regex(/^\d+$/, "region keys are numeric region ids"),
    z.looseObject({ RegionID: z.number().int(), RegionCode: z.string(), Nodes: z.array(z.looseObject({ Name: z.string(), RegionID: z.number().int(), HostName: z.string() })) }),
  ),
});

/**
 * Reads and checks a DERP map file (tailcfg.DERPMap JSON).
 * @throws {StartupError} `config_invalid` naming `--derp-map`, the file and the bad field.
 */
export function readDerpMapFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new StartupError("config_invalid", "--derp-map", path, `cannot read: ${describeSystemError(e)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new StartupError("config_invalid", "--derp-map", path, `not valid JSON: ${(e as Error).message}`);
  }
  const r = DerpMapSchema.safeParse(value);
  if (!r.success) throw new StartupError("config_invalid", "--derp-map", path, formatZodError(r.error, "derpMap"));
  return r.data as Record<string, unknown>;
}

/** Splits "ADDR:PORT" (IPv6 in brackets); throws naming the field. */
export function parseListen(s: string, field = "listen"): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ValidationError(`${field}: ${JSON.stringify(s)} is not ADDR:PORT (e.g. 0.0.0.0:8080)`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** Merges the sources (later wins) and resolves defaults. */
export function resolveConfig(...sources: RawConfig[]): ServeConfig {
  const raw: RawConfig = Object.assign({}, ...sources.map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined))));
  const { host, port } = parseListen(raw.listen ?? DEFAULT_LISTEN);
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  if ((raw.tlsCert === undefined) !== (raw.tlsKey === undefined)) throw new ValidationError("tls: --tls-cert and --tls-key must be given together");
  if (raw.tlsCert && raw.tlsSelfSigned) throw new ValidationError("tls: choose --tls-cert/--tls-key or --tls-self-signed, not both");
  const tls = raw.tlsCert ? { cert: raw.tlsCert, key: raw.tlsKey! } : raw.tlsSelfSigned ? ({ selfSigned: true } as const) : null;
  const serverUrl = raw.serverUrl ?? `${tls ? "https" : "http"}://${urlHost}:${port}`;
  try {
    const u = new URL(serverUrl);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    throw new ValidationError(`server-url: ${JSON.stringify(serverUrl)} is not an http(s) URL`);
  }
  const domain = raw.tailnetDomain ?? "lattice.internal";
  if (!/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(domain)) throw new ValidationError(`tailnetDomain: ${JSON.stringify(domain)} is not a DNS name`);
  return {
    listenHost: host,
    listenPort: port,
    serverUrl: serverUrl.replace(/\/+$/, ""),
    db: raw.db ?? DEFAULT_DB,
    dbPasswordFile: raw.dbPasswordFile ?? null,
    webSessionMs: parseDuration(raw.webSessionTimeout ?? "24h", "webSessionTimeout"),
    socket: raw.socket ?? DEFAULT_SOCKET,
    tls,
    tailnetDomain: domain,
    ephemeralTimeoutMs: parseDuration(raw.ephemeralTimeout ?? "30m", "ephemeralTimeout"),
    nodeKeyExpiryMs: parseDuration(raw.nodeKeyExpiry ?? "180d", "nodeKeyExpiry"),
    sweepIntervalMs: parseDuration(raw.sweepInterval ?? "10s", "sweepInterval"),
    derpMapFile: raw.derpMap ?? null,
    derp: resolveEmbeddedDerp(raw),
    logLevel: raw.logLevel ?? "info",
    oidc: resolveOidc(raw),
    allowInsecurePermissions: raw.allowInsecurePermissions ?? false,
    nodeLimits: resolveNodeLimits(raw),
    limits: resolveListenerLimits(raw),
  };
}

/** A DERP region code: lowercase letters, digits and '-', starting with a letter or digit, 1–32 characters. */
export const REGION_CODE_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;

/**
 * Resolves the embedded relay's settings: null with `noDerp`; otherwise region id
 * (900–999), region code ({@link REGION_CODE_RE}) and STUN port (0–65535, -1 = off).
 * Throws ValidationError naming the setting and value.
 */
export function resolveEmbeddedDerp(raw: RawConfig): EmbeddedDerpConfig | null {
  if (raw.noDerp) return null;
  const int = (v: number | string, field: string): number => {
    const n = typeof v === "number" ? v : /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n)) throw new ValidationError(`${field}: ${JSON.stringify(v)} is not a whole number`);
    return n;
  };
  const regionId = raw.derpRegionId === undefined ? DEFAULT_DERP_REGION_ID : int(raw.derpRegionId, "derpRegionId (--derp-region-id)");
  if (regionId < 900 || regionId > 999) throw new ValidationError(`derpRegionId (--derp-region-id): ${JSON.stringify(raw.derpRegionId)} is outside 900–999 (the self-hosted region ids)`);
  const regionCode = raw.derpRegionCode ?? DEFAULT_DERP_REGION_CODE;
  if (!REGION_CODE_RE.test(regionCode)) throw new ValidationError(`derpRegionCode (--derp-region-code): ${JSON.stringify(regionCode)} is not a region code (lowercase letters, digits and '-', 1–32 characters)`);
  const port = raw.stunPort === undefined ? DEFAULT_STUN_PORT : int(raw.stunPort, "stunPort (--stun-port)");
  if (port < -1 || port > 65535) throw new ValidationError(`stunPort (--stun-port): ${JSON.stringify(raw.stunPort)} is not a port 0–65535 (or -1 to disable STUN)`);
  return { regionId, regionCode, stunPort: port === -1 ? null : port };
}

/** Resolves {@link NodeLimits}: defaults for what is not set; errors name the setting. */
export function resolveNodeLimits(raw: RawConfig): NodeLimits {
  const d = DEFAULT_NODE_LIMITS;
  const dur = (v: string | undefined, field: string, def: number) => {
    if (v === undefined) return def;
    const ms = parseDuration(v, field);
    if (ms <= 0) throw new ValidationError(`${field}: ${JSON.stringify(v)} must be longer than 0`);
    return ms;
  };
  const limits: NodeLimits = {
    registrationTimeoutMs: dur(raw.registrationTimeout, "registrationTimeout", d.registrationTimeoutMs),
    registrationIdleMs: dur(raw.registrationIdleTimeout, "registrationIdleTimeout", d.registrationIdleMs),
    maxPendingRegistrations: raw.maxPendingRegistrations ?? d.maxPendingRegistrations,
    maxPendingRegistrationsPerSource: raw.maxPendingRegistrationsPerSource ?? d.maxPendingRegistrationsPerSource,
    maxRegisterRequestBytes: raw.maxRegisterRequestBytes ?? d.maxRegisterRequestBytes,
    maxHostinfoBytes: raw.maxHostinfoBytes ?? d.maxHostinfoBytes,
    hostinfoMinIntervalMs: raw.hostinfoMinInterval === undefined ? d.hostinfoMinIntervalMs : parseDuration(raw.hostinfoMinInterval, "hostinfoMinInterval"),
  };
  if (limits.registrationIdleMs > limits.registrationTimeoutMs) {
    throw new ValidationError(`registrationIdleTimeout: ${raw.registrationIdleTimeout} is longer than registrationTimeout (${raw.registrationTimeout ?? "15m"})`);
  }
  return limits;
}

function splitList(v: string | string[] | undefined): string[] {
  const items = Array.isArray(v) ? v : (v ?? "").split(",");
  return items.map((x) => x.trim().toLowerCase()).filter((x) => x !== "");
}

/**
 * Resolves the OIDC settings: none of the `oidc*` keys → null; otherwise issuer, client id
 * and a client secret (inline or file) are all required and the error names what is missing.
 */
export function resolveOidc(raw: RawConfig): OidcConfig | null {
  const given = (Object.keys(raw) as Array<keyof RawConfig>).filter((k) => k.startsWith("oidc") && raw[k] !== undefined);
  if (given.length === 0) return null;
  const missing: string[] = [];
  if (!raw.oidcIssuer) missing.push("--oidc-issuer (oidcIssuer)");
  if (!raw.oidcClientId) missing.push("--oidc-client-id (oidcClientId)");
  if (!raw.oidcClientSecret && !raw.oidcClientSecretFile) missing.push("--oidc-client-secret or --oidc-client-secret-file (oidcClientSecret)");
  if (missing.length) throw new ValidationError(`oidc: incomplete OIDC configuration (${given.join(", ")} given): missing ${missing.join(", ")}`);
  if (raw.oidcClientSecret && raw.oidcClientSecretFile) throw new ValidationError("oidc: give --oidc-client-secret or --oidc-client-secret-file, not both");
  let issuer: URL;
  try {
    issuer = new URL(raw.oidcIssuer!);
  } catch {
    throw new ValidationError(`oidcIssuer: ${JSON.stringify(raw.oidcIssuer)} is not a URL`);
  }
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(issuer.hostname);
  if (issuer.protocol !== "https:" && !(issuer.protocol === "http:" && loopback)) {
    throw new ValidationError(`oidcIssuer: ${JSON.stringify(raw.oidcIssuer)} must be an https URL (http only on loopback)`);
  }
  let secret = raw.oidcClientSecret;
  if (raw.oidcClientSecretFile) {
    try {
      secret = readFileSync(raw.oidcClientSecretFile, "utf8").trim();
    } catch (e) {
      throw new ValidationError(`oidcClientSecretFile: ${(e as Error).message}`);
    }
    if (!secret) throw new ValidationError(`oidcClientSecretFile: ${raw.oidcClientSecretFile} is empty`);
  }
  const allowedDomains = splitList(raw.oidcAllowedDomains);
  allowedDomains.forEach((d, i) => {
    if (!/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]+$/.test(d)) throw new ValidationError(`oidcAllowedDomains[${i}]: ${JSON.stringify(d)} is not a domain name`);
  });
  const allowedUsers = splitList(raw.oidcAllowedUsers);
  allowedUsers.forEach((u, i) => {
    if (!/^[^@\s]+@[^@\s]+$/.test(u)) throw new ValidationError(`oidcAllowedUsers[${i}]: ${JSON.stringify(u)} is not an e-mail address`);
  });
  return { issuer: raw.oidcIssuer!, clientId: raw.oidcClientId!, clientSecret: secret!, allowedDomains, allowedUsers, only: raw.oidcOnly ?? false };
}
