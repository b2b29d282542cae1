/**
 * The LocalAPI client: HTTP/1.1 + JSON over latticed's unix socket (docs/localapi.md). The
 * CLI talks to the daemon through nothing else.
 */
import { request } from "node:http";
import { CliError, DaemonNotRunningError, LocalApiError } from "./errors.js";
import type {
  DnsStatus, NetcheckReport, PingResult, Prefs, PrefsPatch, Status, UpRequest, UpResponse, VersionResponse, WhoIsResponse,
} from "./types.js";
import type { ExitNodeSuggestion } from "./types.js";

/** The daemon's default socket (latticed's `--socket` default). */
export const DEFAULT_SOCKET = "/var/run/lattice/latticed.sock";
/** Answers larger than this are refused (a status with thousands of peers fits easily). */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
/** Default time for one request, connect to last byte. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** How much longer than its own timeout the CLI waits for the daemon's ping answer. */
export const PING_GRACE_MS = 2_000;

/** Ping types as the LocalAPI spells them (`type=` query). */
export type PingType = "disco" | "TSMP" | "ICMP";

/**
 * One request/response; `timeoutMs` bounds the whole exchange (then a CliError
 * `ERR_LOCALAPI_TIMEOUT`). Throws DaemonNotRunningError when the socket is missing or
 * refuses, LocalApiError for a non-2xx answer.
 */
export class LocalClient {
  constructor(readonly socketPath: string) {}

  async status(peers = true): Promise<Status> {
    return this.json<Status>("GET", peers ? "/localapi/v0/status" : "/localapi/v0/status?peers=false");
  }
  async prefs(): Promise<Prefs> {
    return this.json<Prefs>("GET", "/localapi/v0/prefs");
  }
  async patchPrefs(patch: PrefsPatch): Promise<Prefs> {
    return this.json<Prefs>("PATCH", "/localapi/v0/prefs", patch);
  }
  async up(req: UpRequest): Promise<UpResponse> {
    return this.json<UpResponse>("POST", "/localapi/v0/up", req, 60_000);
  }
  async down(): Promise<void> {
    await this.json<unknown>("POST", "/localapi/v0/down", {});
  }
  async logout(): Promise<void> {
    await this.json<unknown>("POST", "/localapi/v0/logout", {}, 60_000);
  }
  /** `timeoutMs` is the daemon's ping timeout; the request itself gets PING_GRACE_MS more. */
  async ping(ip: string, type: PingType, timeoutMs: number): Promise<PingResult> {
    const q = new URLSearchParams({ ip, type, timeout: String(Math.max(1, Math.round(timeoutMs))) });
    return this.json<PingResult>("GET", `/localapi/v0/ping?${q}`, undefined, timeoutMs + PING_GRACE_MS);
  }
  async netcheck(): Promise<NetcheckReport> {
    return this.json<NetcheckReport>("GET", "/localapi/v0/netcheck", undefined, 60_000);
  }
  /** GET /localapi/v0/suggest-exit-node; 404 `no_exit_nodes` (a LocalApiError) when none. */
  async suggestExitNode(): Promise<ExitNodeSuggestion> {
    return this.json<ExitNodeSuggestion>("GET", "/localapi/v0/suggest-exit-node");
  }
  async whois(addr: string): Promise<WhoIsResponse> {
    return this.json<WhoIsResponse>("GET", `/localapi/v0/whois?${new URLSearchParams({ addr })}`);
  }
  async bugreport(note: string): Promise<string> {
    const q = note === "" ? "" : `?${new URLSearchParams({ note })}`;
    return (await this.raw("GET", `/localapi/v0/bugreport${q}`)).toString("utf8");
  }
  async dnsStatus(): Promise<DnsStatus> {
    return this.json<DnsStatus>("GET", "/localapi/v0/dns-status");
  }
  async version(): Promise<VersionResponse> {
    return this.json<VersionResponse>("GET", "/localapi/v0/version");
  }

  private async json<T>(method: string, path: string, body?: unknown, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<T> {
    const buf = await this.raw(method, path, body, timeoutMs);
    try {
      return JSON.parse(buf.toString("utf8")) as T;
    } catch {
      throw new CliError("ERR_LOCALAPI_BAD_ANSWER", `${method} ${path.split("?")[0]}: latticed answered with invalid JSON`);
    }
  }

  /** The answer body of a 2xx; see the class comment for the errors. */
  raw(method: string, path: string, body?: unknown, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<Buffer> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false;
      const fail = (e: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(e);
      };
      const headers: Record<string, string> = { Host: "local-tailscaled.sock", Accept: "application/json" };
      if (payload) {
        headers["Content-Type"] = "application/json";
        headers["Content-Length"] = String(payload.length);
      }
      const req = request({ socketPath: this.socketPath, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            fail(new CliError("ERR_LOCALAPI_TOO_LARGE", `${method} ${path.split("?")[0]}: answer larger than ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on("error", (e) => fail(e));
        res.on("end", () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const data = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(data);
          else reject(apiError(status, data));
        });
      });
      const timer = setTimeout(() => {
        fail(new CliError("ERR_LOCALAPI_TIMEOUT", `${method} ${path.split("?")[0]}: no answer from latticed within ${Math.round(timeoutMs / 1000)}s`));
      }, timeoutMs);
      req.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (e.code === "ENOENT" || e.code === "ECONNREFUSED" || e.code === "ENOTSOCK") fail(new DaemonNotRunningError(this.socketPath));
        else if (e.code === "EACCES") fail(new CliError("ERR_SOCKET_ACCESS", `cannot connect to ${this.socketPath}: permission denied`));
        else fail(new CliError("ERR_SOCKET", `LocalAPI ${this.socketPath}: ${e.message}`));
      });
      req.end(payload);
    });
  }
}

/** A non-2xx answer as a LocalApiError, from the doc's `{"error","code"}` body when present. */
function apiError(status: number, data: Buffer): LocalApiError {
  const text = data.toString("utf8");
  try {
    const j = JSON.parse(text) as { error?: unknown; code?: unknown };
    if (typeof j.error === "string") return new LocalApiError(status, typeof j.code === "string" ? j.code : "", j.error);
  } catch {
    // not JSON: fall through
  }
  const snippet = text.trim().slice(0, 200);
  return new LocalApiError(status, "", `LocalAPI answered HTTP ${status}${snippet ? `: ${snippet}` : ""}`);
}
