/**
 * Binds an upgraded TCP socket to a {@link ServerConn}: bytes in → receive(), wake() →
 * pull()/write until the socket needs draining (then setWriteBlocked), close both ways.
 * Also arms the one process timer at the server core's next deadline.
 */
import type { Socket } from "node:net";
import type { DerpServer, RemoteAddr, ServerConn } from "@lattice/derp";
import { parseIp } from "@lattice/wireguard";

/** 16-byte form of a socket's remote address (IPv4 as ::ffff:a.b.c.d). */
export function remoteOf(socket: Socket): RemoteAddr {
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
  socket.on("close", () => {
    if (c.state !== "closed") {
      c.closedByPeer();
      onClose(null);
    }
  });
  if (head.length > 0) c.receive(head);
}
