/**
 * lattice-derp flags → a validated {@link RelayConfig}. Every error is a FlagError naming
 * the flag and value; nothing is started until all flags are valid.
 */
import { readFileSync, statSync } from "node:fs";
import { FlagError } from "./errors.js";

/** A listen address: host ("" = all interfaces) and port (0 = any). */
export interface ListenAddr {
  readonly host: string;
  readonly port: number;
}

export interface RelayConfig {
  readonly listen: ListenAddr;
  /** Plain-HTTP port (/generate_204, /derp/probe); null = disabled. */
  readonly httpPort: number | null;
  /** STUN UDP port; null = disabled. */
  readonly stunPort: number | null;
  readonly tls: { readonly cert: string; readonly key: string } | { readonly selfSigned: true; readonly hostname: string } | null;
  readonly meshWith: readonly string[];
  readonly meshKey: Uint8Array | null;
  readonly verifyClients: boolean;
  readonly controlUrl: string | null;
  readonly maxConnections: number;
  readonly logLevel: string;
}

/** Raw flag values as commander hands them over. */
export interface RawFlags {
  listen?: string;
  httpPort?: string;
  stunPort?: string;
  cert?: string;
  key?: string;
  selfSigned?: boolean;
  hostname?: string;
  meshWith?: string;
  meshKeyFile?: string;
  verifyClients?: boolean;
  controlUrl?: string;
  maxConnections?: string;
  logLevel?: string;
}

/** Parses `HOST:PORT`, `:PORT` or `[V6]:PORT`. */
export function parseListen(flag: string, v: string): ListenAddr {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
  if (!m) throw new FlagError(flag, v, "want HOST:PORT, :PORT or [IPv6]:PORT");
  const port = Number(m[3]);
  if (port > 65535) throw new FlagError(flag, v, "port must be 0..65535");
  return { host: m[1] ?? m[2] ?? "", port };
}

/** Parses a port, or -1 for "disabled" (→ null). */
export function parsePort(flag: string, v: string): number | null {
  if (!/^-?\d{1,5}$/.test(v)) throw new FlagError(flag, v, "want a port number 0..65535, or -1 to disable");
  const n = Number(v);
  if (n === -1) return null;
  if (n < 0 || n > 65535) throw new FlagError(flag, v, "want a port number 0..65535, or -1 to disable");
  return n;
}

function parseUrl(flag: string, v: string, i?: number): string {
  const where = i === undefined ? "" : ` (item ${i + 1})`;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new FlagError(flag, v, `not a URL${where}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new FlagError(flag, v, `scheme must be https or http${where}`);
  return u.href;
}

/**
 * Reads a mesh key file: 64 hex digits (surrounding whitespace ignored), as Tailscale's
 * derper `--mesh-psk-file`. The file must not be readable by group or others (0600).
 */
export function readMeshKey(flag: string, path: string): Uint8Array {
  let text: string;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) throw new FlagError(flag, path, `mode ${(st.mode & 0o777).toString(8)} lets others read the mesh key; chmod 600 it`);
    text = readFileSync(path, "utf8").trim();
  } catch (e) {
    if (e instanceof FlagError) throw e;
    throw new FlagError(flag, path, `cannot read: ${(e as Error).message}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new FlagError(flag, path, "the file must hold exactly 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`");
  return Uint8Array.from(Buffer.from(text, "hex"));
}

/** Validates all flags together. */
export function buildConfig(f: RawFlags): RelayConfig {
  const listen = parseListen("--listen", f.listen ?? ":443");
  const httpPort = parsePort("--http-port", f.httpPort ?? "80");
  const stunPort = parsePort("--stun-port", f.stunPort ?? "3478");
  if ((f.cert === undefined) !== (f.key === undefined)) {
    throw new FlagError(f.cert === undefined ? "--key" : "--cert", f.cert ?? f.key ?? "", "--cert and --key go together");
  }
  if (f.selfSigned && f.cert !== undefined) throw new FlagError("--self-signed", "true", "conflicts with --cert/--key; pick one");
  const tls = f.cert !== undefined && f.key !== undefined
    ? { cert: f.cert, key: f.key }
    : f.selfSigned ? { selfSigned: true as const, hostname: f.hostname ?? "localhost" } : null;
  const meshWith = (f.meshWith ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "").map((s, i) => parseUrl("--mesh-with", s, i));
  const meshKey = f.meshKeyFile !== undefined ? readMeshKey("--mesh-key-file", f.meshKeyFile) : null;
  if (meshWith.length > 0 && meshKey === null) throw new FlagError("--mesh-with", f.meshWith ?? "", "needs --mesh-key-file (the pre-shared key all relays of the mesh use)");
  const verifyClients = f.verifyClients === true;
  const controlUrl = f.controlUrl !== undefined ? parseUrl("--control-url", f.controlUrl) : null;
  if (verifyClients && controlUrl === null) throw new FlagError("--verify-clients", "true", "needs --control-url (the control server that knows this tailnet's nodes)");
  const mc = f.maxConnections ?? "10000";
  if (!/^\d{1,7}$/.test(mc) || Number(mc) < 1) throw new FlagError("--max-connections", mc, "want a positive integer");
  const logLevel = f.logLevel ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) throw new FlagError("--log-level", logLevel, "want fatal, error, warn, info, debug, trace or silent");
  return { listen, httpPort, stunPort, tls, meshWith, meshKey, verifyClients, controlUrl, maxConnections: Number(mc), logLevel };
}
