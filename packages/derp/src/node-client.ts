/**
 * Node edge for a DERP client: dials `GET /derp` with `Upgrade: DERP` over http/https
 * (or with `Derp-Fast-Start: 1`, writing DERP right after the request as Tailscale's
 * client does), then runs a {@link DerpClient} on the socket. Used by relays to mesh
 * and by tests; magicsock will use it for its DERP legs.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { DerpClient, type DerpClientOptions, type DerpMessage } from "./client.js";
import { FAST_START_HEADER } from "./constants.js";
import { DerpError } from "./errors.js";
import type { ServerInfo } from "./handshake.js";

/** Dial options. */
export interface ConnectDerpOptions extends DerpClientOptions {
  /** Connect + login must finish within this (ms, default 10 000). */
  readonly timeoutMs?: number;
  /** Skip the HTTP 101 response (`Derp-Fast-Start: 1`). */
  readonly fastStart?: boolean;
  /** For https: accept any certificate (self-signed relays in tests/labs). */
  readonly insecureSkipVerify?: boolean;
  /** For https: extra CA certificates (PEM). */
  readonly ca?: string | Buffer;
  /** Bytes buffered in the socket beyond which outgoing packets are dropped (default 1 MiB). */
  readonly maxWriteBuffer?: number;
}

/** A logged-in DERP connection. */
export class DerpConnection {
  /** Packets dropped because the socket was backed up. */
  dropped = 0;
  private messageHandlers: ((m: DerpMessage) => void)[] = [];
  private closeHandlers: ((err: Error | null) => void)[] = [];
  private closed = false;
  private corked = false;

  /** @internal */
  constructor(
    readonly client: DerpClient,
    private readonly socket: Socket,
    readonly serverInfo: ServerInfo,
    private readonly maxWriteBuffer: number,
  ) {}

  get serverKey(): Uint8Array {
    return this.client.serverKey!;
  }

  /** Registers a handler for every message after login. */
  onMessage(h: (m: DerpMessage) => void): void {
    this.messageHandlers.push(h);
  }

  /** Registers a handler for the end of the connection (null error = closed locally). */
  onClose(h: (err: Error | null) => void): void {
    this.closeHandlers.push(h);
  }

  /** Sends a packet; returns false (and counts) when dropped because the socket is backed up. */
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    if (this.closed || this.socket.writableLength > this.maxWriteBuffer) {
      this.dropped++;
      return false;
    }
    this.client.send(dst, packet);
    this.flush();
    return true;
  }

  /** Mesh: ForwardPacket; same drop rule as {@link send}. */
  forward(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): boolean {
    if (this.closed || this.socket.writableLength > this.maxWriteBuffer) {
      this.dropped++;
      return false;
    }
    this.client.forward(src, dst, packet);
    this.flush();
    return true;
  }

  notePreferred(preferred: boolean): void {
    this.client.notePreferred(preferred);
    this.flush();
  }

  watchConns(): void {
    this.client.watchConns();
    this.flush();
  }

  closePeer(peer: Uint8Array): void {
    this.client.closePeer(peer);
    this.flush();
  }

  ping(data: Uint8Array): void {
    this.client.ping(data);
    this.flush();
  }

  /** Stops reading from the socket (flow control; the relay then sees a slow reader). */
  pause(): void {
    this.socket.pause();
  }

  /** Resumes reading after {@link pause}. */
  resume(): void {
    this.socket.resume();
  }

  /** Closes the socket. */
  close(): void {
    this.end(null);
  }

  /** @internal */
  deliver(messages: DerpMessage[]): void {
    for (const m of messages) for (const h of this.messageHandlers) h(m);
    this.flush();
  }

  /** @internal */
  end(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    for (const h of this.closeHandlers) h(err);
  }

  /**
   * @internal Writes pending frames. The socket is corked until the next tick, so the
   * frames of one batch (magicsock sends a device batch packet by packet) leave in one
   * writev instead of one syscall each, as the relay side does.
   */
  flush(): void {
    if (this.closed) return;
    const out = this.client.takeOutput();
    if (out.length === 0) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    for (const f of out) this.socket.write(f);
  }
}

/**
 * Connects to a relay (`url` is its base, e.g. `https://relay.example:443`; `/derp` is
 * appended unless the path already ends with it) and logs in. Rejects with a DerpError
 * (`ERR_DERP_CONNECT`) on network failure, a non-101 answer, a bad login or timeout.
 */
export function connectDerp(url: string, opts: ConnectDerpOptions): Promise<DerpConnection> {
  const u = new URL(url);
  if (!u.pathname.endsWith("/derp")) u.pathname = u.pathname.replace(/\/$/, "") + "/derp";
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const client = new DerpClient(opts);
  return new Promise((resolve, reject) => {
    let settled = false;
    let sock: Socket | null = null;
    const fail = (msg: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock?.destroy();
      reject(new DerpError("ERR_DERP_CONNECT", `DERP ${u.href}: ${msg}`));
    };
    const timer = setTimeout(() => fail(`no login within ${timeoutMs} ms`), timeoutMs);
    const start = (socket: Socket, head: Buffer): void => {
      sock = socket;
      socket.setNoDelay(true);
      let conn: DerpConnection | null = null;
      const onData = (chunk: Buffer): void => {
        const r = client.receive(chunk);
        if (!r.ok) {
          if (conn) conn.end(r.error);
          else fail(r.error.message);
          return;
        }
        if (conn) {
          conn.deliver(r.messages);
          return;
        }
        for (const f of client.takeOutput()) socket.write(f);
        const si = r.messages.find((m) => m.kind === "serverInfo");
        if (si && si.kind === "serverInfo") {
          settled = true;
          clearTimeout(timer);
          conn = new DerpConnection(client, socket, si.info, opts.maxWriteBuffer ?? 1 << 20);
          resolve(conn);
          const rest = r.messages.filter((m) => m !== si);
          if (rest.length) queueMicrotask(() => conn!.deliver(rest));
        }
      };
      socket.on("data", onData);
      socket.on("error", (e) => (conn ? conn.end(e) : fail(e.message)));
      socket.on("close", () => (conn ? conn.end(new DerpError("ERR_DERP_CLOSED", "connection closed by relay")) : fail("connection closed during login")));
      if (head.length) onData(head);
    };
    const tls = u.protocol === "https:";
    const port = Number(u.port || (tls ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, "");
    if (opts.fastStart) {
      const socket = tls
        ? tlsConnect({ host, port, servername: /^[\d.]+$|:/.test(host) ? undefined : host, rejectUnauthorized: !opts.insecureSkipVerify, ca: opts.ca })
        : netConnect({ host, port });
      socket.once(tls ? "secureConnect" : "connect", () => {
        socket.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n${FAST_START_HEADER}: 1\r\n\r\n`);
        start(socket, Buffer.alloc(0));
      });
      socket.on("error", (e) => fail(e.message));
      return;
    }
    const req = (tls ? httpsRequest : httpRequest)(u, {
      method: "GET",
      headers: { Upgrade: "DERP", Connection: "Upgrade" },
      ...(tls ? { rejectUnauthorized: !opts.insecureSkipVerify, ca: opts.ca } : {}),
    });
    req.on("upgrade", (res: IncomingMessage, socket: Socket, head: Buffer) => {
      if (res.statusCode !== 101) return fail(`HTTP ${res.statusCode}`);
      start(socket, head);
    });
    req.on("response", (res: IncomingMessage) => {
      res.resume();
      fail(`HTTP ${res.statusCode} instead of 101 Switching Protocols`);
    });
    req.on("error", (e) => fail(e.message));
    req.end();
  });
}
