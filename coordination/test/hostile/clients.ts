/**
 * Hostile clients for tests and soak runs against a real `lattice-control`: each opens
 * connections the way an attacker would, keeps them open from its side, and records what
 * the server did (answered, reset, closed). Combine them freely (e.g. with registration
 * floods in a soak test); every function returns a handle with `close()`.
 *
 * - {@link openUnknownUpgrades}: HTTP/1.1 upgrade requests for protocols the server does
 *   not serve (websocket, h2c, the control protocol on the wrong path or method).
 * - {@link stalledH2Streams}: control-channel HTTP/2 streams (through the real Noise
 *   channel of @lattice/control-client) whose request body never completes.
 * - {@link slowHeaders}: slowloris — request headers trickled one byte at a time.
 * - {@link idleConnections}: TCP connections that never send a byte.
 * - {@link h2FrameFlood}: raw HTTP/2 PING or SETTINGS frames on a control channel,
 *   without reading the acknowledgements.
 */
import http from "node:http";
import net from "node:net";
import http2 from "node:http2";
import { randomBytes } from "node:crypto";
import { ControlClient, dialControl, fetchServerKey, noiseKeyPair } from "@lattice/control-client";

/** What happened to one hostile connection or stream so far. */
export interface Outcome {
  /** First line of the server's answer (HTTP/1.1), or `:status` (HTTP/2); "" if none yet. */
  status: string;
  /** The server closed or reset it. */
  closedByServer: boolean;
  /** HTTP/2 RST_STREAM code, when reset. */
  rstCode?: number;
}

/** A set of hostile connections or streams. */
export interface Hostile {
  readonly outcomes: Outcome[];
  /** Count of outcomes closed by the server. */
  closed(): number;
  /** Count of outcomes with an answer. */
  answered(): number;
  /** Waits until `pred` holds for every outcome, or `ms` pass (then resolves false). */
  settle(pred: (o: Outcome) => boolean, ms?: number): Promise<boolean>;
  /** Closes everything from the client side. */
  close(): void;
}

function hostile(outcomes: Outcome[], closeAll: () => void): Hostile {
  return {
    outcomes,
    closed: () => outcomes.filter((o) => o.closedByServer).length,
    answered: () => outcomes.filter((o) => o.status !== "").length,
    async settle(pred, ms = 10_000) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (outcomes.every(pred)) return true;
        await new Promise((r) => setTimeout(r, 25));
      }
      return outcomes.every(pred);
    },
    close: closeAll,
  };
}

function hostPort(serverUrl: string): { host: string; port: number } {
  const u = new URL(serverUrl);
  if (u.protocol !== "http:") throw new Error("hostile clients speak plain HTTP (test servers without TLS)");
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || 80) };
}

/** Opens a raw TCP connection, sends `payload`, records the answer; the client never closes it. */
function rawConnection(serverUrl: string, payload: string | null, outcome: Outcome, sockets: Sockets): net.Socket {
  const { host, port } = hostPort(serverUrl);
  const s = net.connect(port, host);
  sockets.list.push(s);
  let buf = "";
  s.on("data", (d: Buffer) => {
    buf += d.toString("latin1");
    if (!outcome.status && buf.includes("\r\n")) outcome.status = buf.slice(0, buf.indexOf("\r\n"));
  });
  s.on("error", () => {});
  s.on("end", () => (outcome.closedByServer = true));
  s.on("close", () => {
    if (!sockets.closing) outcome.closedByServer = true;
  });
  if (payload !== null) s.write(payload);
  return s;
}

/** Sockets opened by one hostile client; `closing` marks a close from our side. */
interface Sockets {
  list: net.Socket[];
  closing: boolean;
}

function closeSockets(sockets: Sockets): void {
  sockets.closing = true;
  for (const s of sockets.list) s.destroy();
}

/** Upgrade requests the server does not serve, cycled through by {@link openUnknownUpgrades}. */
export const UNKNOWN_UPGRADES: ReadonlyArray<{ method: string; path: string; protocol: string }> = [
  { method: "GET", path: "/", protocol: "websocket" },
  { method: "GET", path: "/api/v1/users", protocol: "h2c" },
  { method: "POST", path: "/", protocol: "lattice-control-protocol" },
  { method: "GET", path: "/ts2021", protocol: "websocket" },
  { method: "GET", path: "/login", protocol: "TLS/1.2" },
];

/**
 * Opens `n` connections each sending an upgrade request the server does not serve (see
 * {@link UNKNOWN_UPGRADES}) and keeps them open. A correct server answers each with an
 * HTTP error and closes it.
 */
export function openUnknownUpgrades(serverUrl: string, n: number): Hostile {
  const sockets: Sockets = { list: [], closing: false };
  const outcomes: Outcome[] = [];
  for (let i = 0; i < n; i++) {
    const u = UNKNOWN_UPGRADES[i % UNKNOWN_UPGRADES.length]!;
    const o: Outcome = { status: "", closedByServer: false };
    outcomes.push(o);
    const key = randomBytes(16).toString("base64");
    rawConnection(
      serverUrl,
      `${u.method} ${u.path} HTTP/1.1\r\nHost: lattice\r\nConnection: Upgrade\r\nUpgrade: ${u.protocol}\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n`,
      o,
      sockets,
    );
  }
  return hostile(outcomes, () => closeSockets(sockets));
}

/** Opens `n` TCP connections that never send anything. */
export function idleConnections(serverUrl: string, n: number): Hostile {
  const sockets: Sockets = { list: [], closing: false };
  const outcomes: Outcome[] = [];
  for (let i = 0; i < n; i++) {
    const o: Outcome = { status: "", closedByServer: false };
    outcomes.push(o);
    rawConnection(serverUrl, null, o, sockets);
  }
  return hostile(outcomes, () => closeSockets(sockets));
}

/**
 * Slowloris: `n` connections that send a request line and then one header byte every
 * `everyMs` (default 100), never finishing the headers.
 */
export function slowHeaders(serverUrl: string, n: number, everyMs = 100): Hostile {
  const sockets: Sockets = { list: [], closing: false };
  const outcomes: Outcome[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < n; i++) {
    const o: Outcome = { status: "", closedByServer: false };
    outcomes.push(o);
    const s = rawConnection(serverUrl, "GET / HTTP/1.1\r\nHost: lattice\r\nX-Slow: ", o, sockets);
    const t = setInterval(() => {
      if (s.destroyed || o.closedByServer) return clearInterval(t);
      s.write("a");
    }, everyMs);
    timers.push(t);
  }
  return hostile(outcomes, () => {
    for (const t of timers) clearInterval(t);
    closeSockets(sockets);
  });
}

/** Handle of {@link stalledH2Streams}: also the control clients, to check their channels. */
export interface StalledStreams extends Hostile {
  readonly clients: ControlClient[];
  /** Channels (connections) the server has closed. */
  channelsClosed(): number;
}

/**
 * Opens `conns` control channels (fresh machine keys, real Noise handshake) and on each
 * `streams` POST /machine/register streams that send exactly `bodyBytes` (default 1024, at least 22) of an
 * unfinished JSON body and then nothing. Streams beyond the server's concurrency limit
 * wait in the client's queue (they count as outcomes too).
 */
export async function stalledH2Streams(serverUrl: string, conns: number, streams: number, bodyBytes = 1024): Promise<StalledStreams> {
  const serverPublic = await fetchServerKey(serverUrl);
  const clients = await Promise.all(
    Array.from({ length: conns }, () => ControlClient.connect({ serverUrl, serverPublic, machineKey: noiseKeyPair(new Uint8Array(randomBytes(32))) })),
  );
  const outcomes: Outcome[] = [];
  const h2streams: http2.ClientHttp2Stream[] = [];
  const closedChannels = new Set<ControlClient>();
  for (const c of clients) {
    c.session.on("close", () => closedChannels.add(c));
    c.session.on("error", () => {});
    for (let i = 0; i < streams; i++) {
      const o: Outcome = { status: "", closedByServer: false };
      outcomes.push(o);
      let st: http2.ClientHttp2Stream;
      try {
        st = c.session.request({ ":method": "POST", ":path": "/machine/register", "content-type": "application/json" });
      } catch {
        o.closedByServer = true;
        continue;
      }
      h2streams.push(st);
      st.on("response", (h) => (o.status = String(h[":status"])));
      st.on("error", () => {});
      st.on("data", () => {});
      st.on("close", () => {
        if (st.rstCode !== undefined && st.rstCode !== http2.constants.NGHTTP2_CANCEL) o.rstCode = st.rstCode;
        if (!(st as { byClient?: boolean }).byClient) o.closedByServer = true;
      });
      const prefix = `{"Version":100,"Pad":"`;
      st.write(prefix + "x".repeat(Math.max(0, bodyBytes - prefix.length)));
    }
  }
  const h = hostile(outcomes, () => {
    for (const st of h2streams) {
      (st as { byClient?: boolean }).byClient = true;
      if (!st.destroyed) st.close(http2.constants.NGHTTP2_CANCEL);
    }
    for (const c of clients) c.close();
  });
  return { ...h, clients, channelsClosed: () => closedChannels.size };
}

/** Result of {@link h2FrameFlood}. */
export interface FloodResult {
  /** Frames written before the server closed the channel (or all of them). */
  written: number;
  /** The server closed the channel. */
  closedByServer: boolean;
}

/**
 * On a fresh control channel, sends the HTTP/2 preface and then `frames` PING frames
 * (or empty SETTINGS frames), not reading the server's acknowledgements meanwhile; then
 * reads (and drops) what the server sent and waits up to `waitMs` (default 5000) for the
 * server to close the channel.
 */
export async function h2FrameFlood(serverUrl: string, kind: "ping" | "settings", frames: number, waitMs = 5000): Promise<FloodResult> {
  const serverPublic = await fetchServerKey(serverUrl);
  const conn = await dialControl({ serverUrl, serverPublic, machineKey: noiseKeyPair(new Uint8Array(randomBytes(32))) });
  let closed = false;
  conn.on("error", () => {});
  conn.on("close", () => (closed = true));
  conn.pause(); // never read the acknowledgements
  const frame = (type: number, flags: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(0, 5);
    return Buffer.concat([h, payload]);
  };
  conn.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(4, 0, Buffer.alloc(0))]));
  let written = 0;
  const batch = 256;
  while (written < frames && !closed) {
    const chunk: Buffer[] = [];
    for (let i = 0; i < batch && written < frames; i++, written++) chunk.push(kind === "ping" ? frame(6, 0, randomBytes(8)) : frame(4, 0, Buffer.alloc(0)));
    if (!conn.write(Buffer.concat(chunk))) await new Promise<void>((r) => {
      const t = setTimeout(r, 200);
      conn.once("drain", () => (clearTimeout(t), r()));
    });
  }
  // Now drain what the server sent: a paused socket would never see the server's close.
  conn.resume();
  const end = Date.now() + waitMs;
  while (!closed && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  const result = { written, closedByServer: closed };
  conn.destroy();
  return result;
}

/** Open fds and resident memory of a process, from /proc (Linux). */
export async function procStats(pid: number): Promise<{ fds: number; rssKiB: number }> {
  const { readdir, readFile } = await import("node:fs/promises");
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { fds, rssKiB };
}

/** GET `path` on the server's admin socket (e.g. "/metrics"); the parsed JSON answer. */
export function adminJson(socket: string, path: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: socket, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: body ? JSON.parse(body) : null });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("error", reject);
  });
}
