/**
 * Node edge for a DERP server: everything an HTTP(S) listener needs to serve DERP,
 * whichever program owns the listener (`lattice-derp`, or `lattice-control` embedding a
 * relay). The protocol stays in the sans-IO {@link DerpServer}; this file owns sockets
 * and the one timer:
 *
 * - {@link createNodeDerp}: a server core plus its deadline timer, an HTTP request
 *   handler for `/derp/probe`, `/derp/latency-check`, `/generate_204` and a plain
 *   `GET /derp` (426), and an upgrade handler for `GET /derp` with `Upgrade: DERP`
 *   (101 + `Derp-Version`/`Derp-Public-Key`, or none with `Derp-Fast-Start: 1`).
 * - {@link serveConn}: binds one upgraded socket to a {@link ServerConn}.
 *
 * Paths and headers follow Tailscale's derp/derphttp and derpserver/handler.go.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { parseIp } from "@lattice/netaddr";
import { FAST_START_HEADER, NO_CONTENT_CHALLENGE_HEADER, NO_CONTENT_RESPONSE_HEADER, PROTOCOL_VERSION } from "./constants.js";
import { DerpServer, type DerpServerOptions, type RemoteAddr, type ServerConn } from "./server.js";

/** 16-byte form of a socket's remote address (IPv4 as ::ffff:a.b.c.d); zeros when unknown. */
export function remoteOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): RemoteAddr {
  const ip16 = new Uint8Array(16);
  const p = parseIp(socket.remoteAddress ?? "", true);
  if (p?.family === 4) {
    ip16[10] = 0xff;
    ip16[11] = 0xff;
    ip16.set(p.bytes, 12);
  } else if (p) ip16.set(p.bytes);
  return { ip16, port: socket.remotePort ?? 0 };
}

/** Arms a single timer at `server.nextDeadline()`; call {@link poke} after events that add deadlines. */
export class DeadlineTimer {
  private timer: NodeJS.Timeout | null = null;
  private armedAt = Infinity;

  constructor(private readonly server: DerpServer, private readonly now: () => number) {}

  poke(): void {
    const d = this.server.nextDeadline();
    if (d === null || d >= this.armedAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedAt = d;
    this.timer = setTimeout(() => this.fire(), Math.max(0, d - this.now()));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armedAt = -Infinity;
  }

  private fire(): void {
    this.timer = null;
    this.armedAt = Infinity;
    this.server.tick();
    this.poke();
  }
}

/**
 * Bytes we let sit in a socket's user-space write buffer before calling it blocked. Node's
 * 16 KiB default high-water mark would cap a client at ~16 KiB per event-loop turn while
 * its sender's 64 KiB reads fill the 32-packet queue: the relay dropped ~95 % of a bulk
 * flow (see docs/benchmarks.md). Per-client memory stays bounded by this plus the queue.
 */
export const WRITE_BUFFER_LIMIT = 256 << 10;

/** Serves one DERP connection on `socket`; `head` holds bytes read past the HTTP request. */
export function serveConn(server: DerpServer, timer: DeadlineTimer, socket: Socket, head: Buffer, onClose: (reason: string | null) => void): void {
  socket.setNoDelay(true);
  socket.setTimeout(0);
  let conn: ServerConn | null = null;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  // Writes happen synchronously when the core wakes us (so a 64 KiB read burst from a
  // sender lands in the socket, not in the 32-packet queue), batched by cork until the
  // current callback returns.
  const flush = (): void => {
    if (conn === null) return;
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    for (;;) {
      if (socket.writableLength >= WRITE_BUFFER_LIMIT || socket.destroyed) {
        conn.setWriteBlocked(true);
        timer.poke();
        return;
      }
      const f = conn.pull();
      if (f === null) return;
      socket.write(f);
    }
  };
  conn = server.newConn(remoteOf(socket), {
    wake: flush,
    close: (reason) => {
      onClose(reason);
      socket.destroy();
    },
  });
  const c = conn;
  flush();
  timer.poke();
  socket.on("drain", () => {
    // Emitted once the buffer empties after a write() past the high-water mark.
    c.setWriteBlocked(false);
    flush();
  });
  socket.on("data", (b: Buffer) => {
    c.receive(b);
    timer.poke();
  });
  socket.on("error", () => {});
  // DERP has no half-close: a client that ends its side is gone (else a half-open socket
  // would stay registered, its keep-alives still writable, until the kernel gives up).
  socket.on("end", () => socket.destroy());
  socket.on("close", () => {
    if (c.state !== "closed") {
      c.closedByPeer();
      onClose(null);
    }
  });
  if (head.length > 0) c.receive(head);
}

/** What {@link createNodeDerp} returns. */
export interface NodeDerp {
  readonly server: DerpServer;
  /**
   * Answers `GET|HEAD /derp/probe` and `/derp/latency-check` (200, CORS `*`; other
   * methods 405), `/generate_204` (204, echoing a valid `X-Tailscale-Challenge`) and a
   * `/derp` request without the upgrade (426). Returns false for any other path.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /**
   * Takes an upgrade request for `/derp`: with `Upgrade: DERP` the socket becomes a DERP
   * connection; with another protocol (e.g. WebSocket) it is answered 426 and closed.
   * Returns false, touching nothing, for other paths.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Stops the timer and closes every DERP connection. */
  close(reason?: string): void;
}

/** Options of {@link createNodeDerp}: the core's options plus a log hook. */
export interface NodeDerpOptions extends DerpServerOptions {
  /** Called when a connection closes; `reason` null when the client hung up. */
  readonly onConnClose?: (remote: string | undefined, reason: string | null) => void;
}

/** How long a refused upgrade's answer may take to flush before the socket is destroyed (ms). */
const REFUSE_GRACE_MS = 5_000;

const pathOf = (req: IncomingMessage): string => (req.url ?? "/").split("?")[0]!;

/**
 * Answers `/derp/probe`, `/derp/latency-check`, `/generate_204` and a plain `GET /derp`;
 * false for other paths (Tailscale's derpserver/handler.go).
 */
export function handleDerpHttp(req: IncomingMessage, res: ServerResponse): boolean {
  switch (pathOf(req)) {
    case "/derp/probe":
    case "/derp/latency-check":
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { "content-type": "text/plain" }).end("bogus probe method\n");
        return true;
      }
      res.writeHead(200, { "access-control-allow-origin": "*" }).end();
      return true;
    case "/generate_204": {
      const ch = req.headers[NO_CONTENT_CHALLENGE_HEADER.toLowerCase()];
      const headers: Record<string, string> = { "cache-control": "no-cache, no-store, must-revalidate, no-transform, max-age=0" };
      if (typeof ch === "string" && ch.length <= 64 && /^[A-Za-z0-9._:-]*$/.test(ch) && ch !== "") headers[NO_CONTENT_RESPONSE_HEADER] = `response ${ch}`;
      res.writeHead(204, headers).end();
      return true;
    }
    case "/derp":
      res.writeHead(426, { "content-type": "text/plain" }).end("DERP requires connection upgrade\n");
      return true;
  }
  return false;
}

/**
 * Builds a DERP server core with its Node edge.
 * @throws {RangeError} from {@link DerpServer} for a bad private or mesh key length.
 */
export function createNodeDerp(opts: NodeDerpOptions): NodeDerp {
  const server = new DerpServer(opts);
  const timer = new DeadlineTimer(server, opts.now);
  const publicHex = Buffer.from(server.publicKey).toString("hex");
  return {
    server,
    handleRequest: handleDerpHttp,
    handleUpgrade(req, socket, head) {
      if (pathOf(req) !== "/derp") return false;
      socket.on("error", () => {});
      const up = String(req.headers.upgrade ?? "").toLowerCase();
      if (up !== "derp" || !(socket instanceof Socket)) {
        socket.end("HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nDERP requires Upgrade: DERP on /derp\n");
        // A peer that never reads the answer must not hold the socket.
        const t = setTimeout(() => socket.destroy(), REFUSE_GRACE_MS);
        t.unref();
        socket.once("close", () => clearTimeout(t));
        return true;
      }
      if (req.headers[FAST_START_HEADER.toLowerCase()] !== "1") {
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Version: ${PROTOCOL_VERSION}\r\nDerp-Public-Key: ${publicHex}\r\n\r\n`);
      }
      serveConn(server, timer, socket, head, (reason) => opts.onConnClose?.(socket.remoteAddress, reason));
      return true;
    },
    close(reason = "relay shutting down") {
      timer.stop();
      server.closeAll(reason);
    },
  };
}
