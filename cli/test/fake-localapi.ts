/**
 * A fake latticed LocalAPI for the CLI's tests, faithful to docs/localapi.md: HTTP/1.1 on a
 * unix socket, `Host: local-tailscaled.sock|localhost` or 403, 64 KiB body limit, errors as
 * `{"error","code"}` with the doc's codes, `?peers=false` omitting Peer, PATCH prefs
 * changing only the given fields (400 naming a bad field), `/up` answering at once.
 * Behaviour is scripted per test: the status sequence seen by successive polls, the ping
 * answers, and so on. Every request is recorded.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  ExitNodeSuggestion, NetcheckReport, PeerStatus, PingResult, Prefs, Status, UpRequest, UpResponse, WhoIsResponse,
} from "../src/types.js";

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  host: string | undefined;
  body: unknown;
}

/** An error answer: status + the doc's code. */
export interface FakeError {
  status: number;
  code: string;
  error: string;
}

export type PingAnswer = PingResult | "timeout" | FakeError;

export interface FakeState {
  status: Status;
  prefs: Prefs;
  /** Statuses served by the next GET /status calls, one each (then `status` stays). */
  statusScript: Partial<Status>[];
  /** What POST /up answers and does; default: Running with no URL. */
  onUp: (req: UpRequest, fake: FakeLocalApi) => UpResponse | FakeError;
  pingAnswers: PingAnswer[];
  netcheck: NetcheckReport;
  whois: Record<string, WhoIsResponse>;
  bugMarker: string;
  /** What GET /suggest-exit-node answers; null → 404 `no_exit_nodes`. */
  suggestion: ExitNodeSuggestion | null;
  version: { Version: string; Daemon: string };
  /** Force an answer for a path (e.g. a 500 without JSON). */
  override?: (req: RecordedRequest, res: ServerResponse) => boolean;
}

const ZERO = "0001-01-01T00:00:00Z";
const PREF_FIELDS: Record<string, "string" | "boolean" | "string[]"> = {
  ControlURL: "string", WantRunning: "boolean", Hostname: "string", RunSSH: "boolean",
  AdvertiseTags: "string[]", RouteAll: "boolean", CorpDNS: "boolean",
  AdvertiseRoutes: "string[]", ExitNodeIP: "string", ExitNodeAllowLANAccess: "boolean", NoSNAT: "boolean",
};

export function peer(over: Partial<PeerStatus> & Pick<PeerStatus, "HostName">): PeerStatus {
  const name = over.HostName.toLowerCase();
  return {
    ID: `n${name}CNTRL`, PublicKey: `nodekey:${Buffer.from(name).toString("hex").padEnd(64, "0")}`,
    DNSName: `${name}.tail.lattice.`, OS: "linux", UserID: 1, TailscaleIPs: ["100.64.0.9", "fd7a:115c:a1e0::9"],
    AllowedIPs: ["100.64.0.9/32", "fd7a:115c:a1e0::9/128"], Addrs: [], CurAddr: "", Relay: "fra",
    RxBytes: 0, TxBytes: 0, Created: "2026-11-01T00:00:00Z", LastWrite: ZERO, LastSeen: ZERO, LastHandshake: ZERO,
    Online: true, Active: false, ExitNode: false, ExitNodeOption: false, Expired: false, InNetworkMap: true,
    InMagicSock: true, InEngine: true, ...over,
  };
}

/** A Running node "alpha" (alice) with peers: direct+active, relayed+active, idle, offline, tagged. */
export function sampleStatus(nowMs: number): Status {
  const ago = (ms: number): string => new Date(nowMs - ms).toISOString();
  const self = peer({ HostName: "alpha", TailscaleIPs: ["100.64.0.1", "fd7a:115c:a1e0::1"], Relay: "fra" });
  const peers = [
    peer({ HostName: "delta", TailscaleIPs: ["100.64.0.4", "fd7a:115c:a1e0::4"], Online: false, LastSeen: ago(3 * 3600_000 + 60_000) }),
    peer({ HostName: "bravo", TailscaleIPs: ["100.64.0.2", "fd7a:115c:a1e0::2"], Active: true, CurAddr: "192.0.2.7:41641", Relay: "fra", TxBytes: 1234, RxBytes: 5678, LastHandshake: ago(5000) }),
    peer({ HostName: "charlie", TailscaleIPs: ["100.64.0.3", "fd7a:115c:a1e0::3"], Active: true, Relay: "nyc", TxBytes: 10, RxBytes: 20, OS: "windows", UserID: 2 }),
    peer({ HostName: "echo", TailscaleIPs: ["100.64.0.5", "fd7a:115c:a1e0::5"], Tags: ["tag:server"], UserID: 3 }),
    peer({ HostName: "foxtrot", TailscaleIPs: ["100.64.0.6", "fd7a:115c:a1e0::6"], TxBytes: 1, RxBytes: 0 }),
  ];
  return {
    Version: "0.1.0", TUN: true, BackendState: "Running", HaveNodeKey: true, AuthURL: "",
    TailscaleIPs: self.TailscaleIPs, Self: self, Health: [], MagicDNSSuffix: "tail.lattice",
    CurrentTailnet: { Name: "alice@example.com", MagicDNSSuffix: "tail.lattice", MagicDNSEnabled: true },
    Peer: Object.fromEntries(peers.map((p) => [p.PublicKey, p])),
    User: {
      "1": { ID: 1, LoginName: "alice@example.com", DisplayName: "Alice" },
      "2": { ID: 2, LoginName: "bob", DisplayName: "Bob" },
      "3": { ID: 3, LoginName: "alice@example.com", DisplayName: "Alice" },
    },
    ClientVersion: null,
  };
}

function defaultPrefs(): Prefs {
  return { ControlURL: "https://control.example.com", WantRunning: true, Hostname: "", RunSSH: false, AdvertiseTags: [], RouteAll: false, CorpDNS: true, Ephemeral: false,
    AdvertiseRoutes: [], ExitNodeID: "", ExitNodeIP: "", ExitNodeAllowLANAccess: false, NoSNAT: false };
}

export class FakeLocalApi {
  readonly dir: string;
  readonly socketPath: string;
  readonly requests: RecordedRequest[] = [];
  state: FakeState;
  private server: Server | null = null;

  constructor(nowMs = Date.now()) {
    this.dir = mkdtempSync(join(tmpdir(), "lattice-cli-test-"));
    this.socketPath = join(this.dir, "latticed.sock");
    this.state = {
      status: sampleStatus(nowMs), prefs: defaultPrefs(), statusScript: [],
      onUp: () => ({ BackendState: "Running", AuthURL: "" }),
      pingAnswers: [], suggestion: null, bugMarker: "BUG-alpha-20261130T180000Z-abcdef0123456789",
      version: { Version: "0.1.0", Daemon: "latticed" },
      netcheck: {
        UDP: true, IPv4: true, IPv6: false, GlobalV4: "198.51.100.7:41641", GlobalV6: "", MappingVariesByDestIP: false,
        PreferredDERP: 900, RegionLatency: { "900": 12_345_678, "901": 48_000_000 }, RegionV4Latency: { "900": 12_345_678, "901": 48_000_000 }, RegionV6Latency: {},
      },
      whois: {},
    };
  }

  async start(): Promise<this> {
    const server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => void this.handle(req, res));
    server.requestTimeout = 10_000;
    server.maxConnections = 32;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.socketPath, resolve);
    });
    this.server = server;
    return this;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The requests to `path` (without query). */
  calls(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /**
   * The daemon's ExitNodeIP rule (ROUTES-CONTRACT): "" clears ExitNodeID; else the IP must be
   * a peer's offering an exit node, and ExitNodeID becomes its ID. Mutates `patch`.
   */
  private applyExitNode(patch: Partial<Prefs>): FakeError | null {
    if (patch.ExitNodeIP === undefined) return null;
    if (patch.ExitNodeIP === "") {
      patch.ExitNodeID = "";
      return null;
    }
    const p = Object.values(this.state.status.Peer ?? {}).find((x) => (x.TailscaleIPs ?? []).includes(patch.ExitNodeIP!));
    if (!p || !(p.ExitNodeOption || (p.AllowedIPs ?? []).includes("0.0.0.0/0"))) {
      return { status: 400, code: "bad_request", error: `ExitNodeIP: ${patch.ExitNodeIP} is not a peer offering an exit node` };
    }
    patch.ExitNodeID = p.ID;
    return null;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > 64 * 1024) return sendError(res, { status: 413, code: "bad_request", error: "request body larger than 64 KiB" });
      chunks.push(c);
    }
    const url = new URL(req.url ?? "/", "http://local-tailscaled.sock");
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown = undefined;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return sendError(res, { status: 400, code: "bad_request", error: "body is not JSON" });
      }
    }
    const rec: RecordedRequest = { method: req.method ?? "", path: url.pathname, query: url.searchParams, host: req.headers.host, body };
    this.requests.push(rec);
    const host = (req.headers.host ?? "").toLowerCase();
    if (host !== "local-tailscaled.sock" && host !== "localhost") {
      return sendError(res, { status: 403, code: "forbidden", error: `invalid Host header ${JSON.stringify(req.headers.host ?? "")}` });
    }
    if (this.state.override?.(rec, res)) return;
    const route = `${rec.method} ${rec.path}`;
    const st = this.state;
    switch (route) {
      case "GET /localapi/v0/status": {
        const next = st.statusScript.shift();
        if (next) st.status = { ...st.status, ...next };
        const out: Status = { ...st.status };
        if (url.searchParams.get("peers") === "false") delete out.Peer;
        return sendJson(res, 200, out);
      }
      case "GET /localapi/v0/prefs":
        return sendJson(res, 200, st.prefs);
      case "PATCH /localapi/v0/prefs": {
        const patch = { ...(body as Partial<Prefs>) };
        const bad = checkPrefsPatch(body) ?? this.applyExitNode(patch);
        if (bad) return sendError(res, bad);
        st.prefs = { ...st.prefs, ...patch };
        return sendJson(res, 200, st.prefs);
      }
      case "POST /localapi/v0/up": {
        const r = st.onUp((body ?? {}) as UpRequest, this);
        if ("code" in r) return sendError(res, r);
        return sendJson(res, 200, r);
      }
      case "POST /localapi/v0/down":
        st.prefs.WantRunning = false;
        st.status = { ...st.status, BackendState: "Stopped" };
        return sendJson(res, 200, {});
      case "POST /localapi/v0/logout":
        st.status = { ...st.status, BackendState: "NeedsLogin" };
        return sendJson(res, 200, {});
      case "GET /localapi/v0/ping": {
        const ip = url.searchParams.get("ip") ?? "";
        const type = url.searchParams.get("type") ?? "";
        const timeout = url.searchParams.get("timeout") ?? "";
        if (ip === "" || !["disco", "TSMP", "ICMP"].includes(type) || !/^\d+$/.test(timeout)) {
          return sendError(res, { status: 400, code: "bad_request", error: `bad ping query ip=${ip} type=${type} timeout=${timeout}` });
        }
        const a = st.pingAnswers.shift() ?? "timeout";
        if (a === "timeout") return sendError(res, { status: 504, code: "timeout", error: `ping ${ip}: timed out after ${timeout}ms` });
        if ("code" in a) return sendError(res, a);
        return sendJson(res, 200, a);
      }
      case "GET /localapi/v0/netcheck":
        return sendJson(res, 200, st.netcheck);
      case "GET /localapi/v0/whois": {
        const addr = url.searchParams.get("addr") ?? "";
        if (addr === "") return sendError(res, { status: 400, code: "bad_request", error: "missing addr" });
        const w = st.whois[addr] ?? st.whois[addr.replace(/:\d+$/, "")];
        if (!w) return sendError(res, { status: 404, code: "peer_not_found", error: `no node found for ${addr}` });
        return sendJson(res, 200, w);
      }
      case "GET /localapi/v0/bugreport":
        res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
        return void res.end(st.bugMarker + "\n");
      case "GET /localapi/v0/suggest-exit-node":
        if (st.suggestion === null) return sendError(res, { status: 404, code: "no_exit_nodes", error: "no exit nodes available" });
        return sendJson(res, 200, st.suggestion);
      case "GET /localapi/v0/version":
        return sendJson(res, 200, st.version);
      default: {
        const known = ["status", "prefs", "up", "down", "logout", "ping", "netcheck", "whois", "bugreport", "version", "metrics", "suggest-exit-node"].map((p) => `/localapi/v0/${p}`);
        if (known.includes(rec.path)) return sendError(res, { status: 405, code: "method_not_allowed", error: `${rec.method} not allowed on ${rec.path}` });
        return sendError(res, { status: 404, code: "not_found", error: `no such endpoint ${rec.path}` });
      }
    }
  }
}

function checkPrefsPatch(body: unknown): FakeError | null {
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    const routes = (body as { AdvertiseRoutes?: unknown }).AdvertiseRoutes;
    if (Array.isArray(routes) && routes.length > 256) return { status: 400, code: "bad_request", error: "AdvertiseRoutes: at most 256 prefixes" };
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return { status: 400, code: "bad_request", error: "prefs patch must be a JSON object" };
  for (const [k, v] of Object.entries(body)) {
    const t = PREF_FIELDS[k];
    if (!t) return { status: 400, code: "bad_request", error: `prefs field ${JSON.stringify(k)} is unknown or read-only` };
    const ok = t === "string[]" ? Array.isArray(v) && v.every((x) => typeof x === "string") : typeof v === t;
    if (!ok) return { status: 400, code: "bad_request", error: `prefs field ${k}: expected ${t}` };
    if (k === "Hostname" && typeof v === "string" && !/^[A-Za-z0-9-]{0,63}$/.test(v)) {
      return { status: 400, code: "bad_request", error: `prefs field Hostname: invalid hostname ${JSON.stringify(v)}` };
    }
  }
  return null;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

function sendError(res: ServerResponse, e: FakeError): void {
  sendJson(res, e.status, { error: e.error, code: e.code });
}
