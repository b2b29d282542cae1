/**
 * The control client: learns the server's Noise key (`GET /key`), dials the control
 * channel (`POST /ts2021` upgrade with `Upgrade: lattice-control-protocol` and the Noise
 * initiation in `X-Lattice-Handshake`), runs HTTP/2 over it, and offers register and a
 * map-stream iterator. Used by tests and by `latticed`.
 */
import http from "node:http";
import https from "node:https";
import http2 from "node:http2";
import { randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import {
  type MapRequest,
  type MapResponse,
  type OverTLSPublicKeyResponse,
  type RegisterRequest,
  type RegisterResponse,
  type SSHAction,
  parseKey,
} from "@lattice/types";
import {
  type NoiseKeyPair,
  CONTROL_PROTOCOL_VERSION,
  CONTROL_UPGRADE,
  MapFrameDecoder,
  NoiseDuplex,
  clientHandshake,
  encodeHandshakeHeader,
  noiseKeyPair,
} from "@lattice/controlbase";

/** A failed control request: HTTP status (0 for transport failures), stable code, message. */
export class ControlError extends Error {
  /** HTTP status, or 0 when the failure was below HTTP. */
  readonly status: number;
  /** Stable machine-readable code (the server's `code`, or a client-side one). */
  readonly code: string;
  /** Creates a control error. */
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ControlError";
    this.status = status;
    this.code = code;
  }
}

/** Options of {@link ControlClient.connect}. */
export interface ControlClientOptions {
  /** "http://host:port" or "https://host:port" of lattice-control. */
  serverUrl: string;
  /** This machine's long-lived key pair (the Noise static key). */
  machineKey: NoiseKeyPair;
  /** The server's Noise public key; fetched from /key when absent. */
  serverPublic?: Uint8Array;
  /** Randomness for the ephemeral key (default node:crypto). */
  random?: (n: number) => Uint8Array;
  /** Extra TLS options for https URLs (e.g. `ca`, `rejectUnauthorized`). */
  tls?: https.RequestOptions;
  /** Abort the dial after this many ms (default 15 000). */
  timeoutMs?: number;
  /** Local address to dial from (default: chosen by the OS). */
  localAddress?: string;
}

/** GETs `/key?v=N` and returns the server's Noise public key bytes. */
export async function fetchServerKey(serverUrl: string, tls?: https.RequestOptions): Promise<Uint8Array> {
  const url = new URL(`/key?v=${CONTROL_PROTOCOL_VERSION}`, serverUrl);
  const mod = url.protocol === "https:" ? https : http;
  const body = await new Promise<string>((resolve, reject) => {
    const req = mod.get(url, { ...(url.protocol === "https:" ? tls : {}) }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (data += c));
      res.on("end", () =>
        res.statusCode === 200 ? resolve(data) : reject(new ControlError(res.statusCode ?? 0, "key_fetch_failed", `GET /key: HTTP ${res.statusCode}: ${data.trim()}`)),
      );
    });
    req.on("error", (e) => reject(new ControlError(0, "connect_failed", `GET /key: ${e.message}`)));
  });
  let parsed: OverTLSPublicKeyResponse;
  try {
    parsed = JSON.parse(body) as OverTLSPublicKeyResponse;
  } catch {
    throw new ControlError(200, "bad_key_response", "GET /key: response is not JSON");
  }
  const key = parseKey("machine", parsed.publicKey);
  if (!key) throw new ControlError(200, "bad_key_response", "GET /key: publicKey is not an mkey");
  return key;
}

/** Dials the control channel and returns the plaintext stream (Noise established). */
export function dialControl(opts: ControlClientOptions & { serverPublic: Uint8Array }): Promise<NoiseDuplex> {
  const random = opts.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const hs = clientHandshake({ machineKey: opts.machineKey, serverPublic: opts.serverPublic, ephemeral: noiseKeyPair(random(32)) });
  const url = new URL(CONTROL_UPGRADE.path, opts.serverUrl);
  const isTls = url.protocol === "https:";
  return new Promise<NoiseDuplex>((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | null, conn?: NoiseDuplex) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(conn!);
    };
    const req = (isTls ? https : http).request(url, {
      ...(isTls ? opts.tls : {}),
      ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
      method: "POST",
      headers: {
        Connection: "upgrade",
        Upgrade: CONTROL_UPGRADE.protocol,
        [CONTROL_UPGRADE.handshakeHeader]: encodeHandshakeHeader(hs.initiation),
        "Content-Length": "0",
      },
    });
    const timer = setTimeout(() => {
      req.destroy();
      settle(new ControlError(0, "timeout", "control dial timed out"));
    }, opts.timeoutMs ?? 15_000);
    req.on("error", (e) => settle(new ControlError(0, "connect_failed", `control dial: ${e.message}`)));
    req.on("response", (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (data += c));
      res.on("end", () => settle(new ControlError(res.statusCode ?? 0, "upgrade_refused", `control upgrade refused: HTTP ${res.statusCode}: ${data.trim()}`)));
    });
    req.on("upgrade", (_res, socket: Duplex, head: Buffer) => {
      socket.on("error", (e) => settle(new ControlError(0, "connect_failed", `control channel: ${e.message}`)));
      const feed = (chunk: Uint8Array) => {
        try {
          const done = hs.receive(chunk);
          if (!done) return;
          socket.off("data", feed);
          socket.pause();
          settle(null, new NoiseDuplex(socket, done.transport, { initial: done.rest }));
        } catch (e) {
          socket.destroy();
          settle(new ControlError(0, (e as { code?: string }).code ?? "handshake_failed", (e as Error).message));
        }
      };
      socket.on("data", feed);
      socket.on("close", () => settle(new ControlError(0, "connect_failed", "control channel closed during handshake")));
      if (head.length > 0) feed(new Uint8Array(head));
    });
    req.end();
  });
}

/** A live map stream: iterate `messages`; `close()` ends it. */
export interface MapStream extends AsyncIterable<MapResponse> {
  close(): void;
}

/** An established control connection (one HTTP/2 session over Noise). */
export class ControlClient {
  /** The underlying HTTP/2 session. */
  readonly session: http2.ClientHttp2Session;
  /** The server's Noise public key. */
  readonly serverPublic: Uint8Array;
  private readonly conn: NoiseDuplex;

  private constructor(conn: NoiseDuplex, serverPublic: Uint8Array) {
    this.conn = conn;
    this.serverPublic = serverPublic;
    this.session = http2.connect("http://lattice-control", { createConnection: () => conn });
    this.session.on("error", () => conn.destroy());
  }

  /** Fetches the server key if needed, dials, and starts HTTP/2. */
  static async connect(opts: ControlClientOptions): Promise<ControlClient> {
    const serverPublic = opts.serverPublic ?? (await fetchServerKey(opts.serverUrl, opts.tls));
    const conn = await dialControl({ ...opts, serverPublic });
    return new ControlClient(conn, serverPublic);
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  private request(path: string, body: unknown): http2.ClientHttp2Stream {
    const data = Buffer.from(JSON.stringify(body));
    const stream = this.session.request({ ":method": "POST", ":path": path, "content-type": "application/json", "content-length": data.length });
    stream.end(data);
    return stream;
  }

  /** POST /machine/register. Non-200 answers throw ControlError with the server's code and message. */
  register(req: RegisterRequest): Promise<RegisterResponse> {
    return this.jsonRequest<RegisterResponse>("/machine/register", req);
  }

  /** Sends a raw JSON body to a path and returns the status and body text (for tests). */
  raw(path: string, body: string | Buffer): Promise<{ status: number; body: string }> {
    const data = typeof body === "string" ? Buffer.from(body) : body;
    const stream = this.session.request({ ":method": "POST", ":path": path, "content-type": "application/json" });
    stream.end(data);
    return collect(stream);
  }

  /**
   * GET `path` (path and query) over the control channel; the status and body text.
   * `signal` resets the stream (the server sees the request end).
   */
  get(path: string, signal?: AbortSignal): Promise<{ status: number; body: string }> {
    const stream = this.session.request({ ":method": "GET", ":path": path }, { endStream: true });
    if (signal) {
      const onAbort = () => {
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      stream.once("close", () => signal.removeEventListener("abort", onAbort));
    }
    return collect(stream);
  }

  /**
   * Fetches an SSH check-mode URL (a rule's expanded HoldAndDelegate, or a returned one)
   * over the control channel — its path and query; the host is the server this client
   * talks to, as in Tailscale. Resolves the SSHAction (tailcfg JSON).
   * @throws ControlError with the server's status and code for a non-200 answer (the
   *   caller retries), or status 0 when the channel fails or `signal` aborts.
   */
  async sshAction(url: string, signal?: AbortSignal): Promise<SSHAction> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ControlError(0, "bad_url", `not a URL: ${url.slice(0, 200)}`);
    }
    const { status, body } = await this.get(u.pathname + u.search, signal);
    return parseAnswer<SSHAction>(status, body);
  }

  private async jsonRequest<T>(path: string, body: unknown): Promise<T> {
    const { status, body: text } = await collect(this.request(path, body));
    return parseAnswer<T>(status, text);
  }

  /**
   * POST /machine/map. With `Stream: true`, iterates the full MapResponse and then the
   * deltas until `close()` or the server ends the stream; otherwise yields one message.
   * A non-200 answer rejects the first `next()` with ControlError.
   */
  map(req: MapRequest): MapStream {
    const stream = this.request("/machine/map", req);
    const decoder = new MapFrameDecoder();
    const queue: MapResponse[] = [];
    let error: Error | null = null;
    let ended = false;
    let wake: (() => void) | null = null;
    let status = 0;
    let errText = "";
    const notify = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    // HTTP/2 may deliver body chunks before the 'response' event: hold them until then.
    const early: Buffer[] = [];
    const onBody = (chunk: Buffer) => {
      if (status !== 200) {
        errText += chunk.toString("utf8");
        return;
      }
      try {
        for (const m of decoder.push(chunk)) queue.push(m as MapResponse);
      } catch (e) {
        error = e as Error;
        stream.close();
      }
      notify();
    };
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      for (const c of early.splice(0)) onBody(c);
    });
    stream.on("data", (chunk: Buffer) => {
      if (status === 0) early.push(chunk);
      else onBody(chunk);
    });
    const finish = () => {
      if (status !== 200 && status !== 0 && !error) {
        try {
          parseAnswer(status, errText);
        } catch (e) {
          error = e as Error;
        }
      }
      ended = true;
      notify();
    };
    stream.on("end", finish);
    stream.on("close", finish);
    stream.on("error", (e) => {
      error ??= new ControlError(0, "stream_error", e.message);
      finish();
    });
    const iterator: AsyncIterator<MapResponse> = {
      next: async () => {
        for (;;) {
          if (queue.length > 0) return { value: queue.shift()!, done: false };
          if (error) throw error;
          if (ended) return { value: undefined, done: true };
          await new Promise<void>((r) => (wake = r));
        }
      },
      return: async () => {
        if (!stream.destroyed) stream.close();
        return { value: undefined, done: true };
      },
    };
    return {
      [Symbol.asyncIterator]: () => iterator,
      close: () => {
        if (!stream.destroyed) stream.close();
      },
    };
  }

  /** Closes the HTTP/2 session and the channel. */
  close(): void {
    this.session.destroy();
    this.conn.destroy();
  }
}

function collect(stream: http2.ClientHttp2Stream): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let body = "";
    stream.setEncoding("utf8");
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (c: string) => (body += c));
    stream.on("end", () => resolve({ status, body }));
    stream.on("error", (e) => reject(new ControlError(0, "stream_error", e.message)));
    // Closed without a complete answer (reset, cancelled): settles instead of hanging.
    stream.on("close", () => reject(new ControlError(0, "stream_closed", `stream closed before the answer was complete (HTTP ${status})`)));
  });
}

function parseAnswer<T>(status: number, text: string): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ControlError(status, "bad_response", `HTTP ${status}: ${text.slice(0, 200)}`);
  }
  if (status !== 200) {
    const p = parsed as { error?: string; code?: string };
    throw new ControlError(status, p.code ?? "error", p.error ?? `HTTP ${status}`);
  }
  return parsed as T;
}
