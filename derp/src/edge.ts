/**
 * Binds an upgraded TCP socket to a {@link ServerConn}: bytes in → receive(), wake() →
 * pull()/write until the socket needs draining (then setWriteBlocked), close both ways.
 * Also arms the one process timer at the server core's next deadline.
 */
import type { Socket } from "node:net";
import type { DerpServer, RemoteAddr } from "@lattice/derp";
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

/** Serves one DERP connection on `socket`; `head` holds bytes read past the HTTP request. */
export function serveConn(server: DerpServer, timer: DeadlineTimer, socket: Socket, head: Buffer, onClose: (reason: string | null) => void): void {
  socket.setNoDelay(true);
  socket.setTimeout(0);
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    socket.cork();
    try {
      for (;;) {
        if (socket.writableNeedDrain || socket.destroyed) {
          conn.setWriteBlocked(true);
          timer.poke();
          return;
        }
        const f = conn.pull();
        if (f === null) return;
        socket.write(f);
      }
    } finally {
      socket.uncork();
    }
  };
  const conn = server.newConn(remoteOf(socket), {
    wake: () => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(flush);
    },
    close: (reason) => {
      onClose(reason);
      socket.destroy();
    },
  });
  timer.poke();
  socket.on("drain", () => {
    conn.setWriteBlocked(false);
    flush();
  });
  socket.on("data", (b: Buffer) => {
    conn.receive(b);
    timer.poke();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    if (conn.state !== "closed") {
      conn.closedByPeer();
      onClose(null);
    }
  });
  if (head.length > 0) conn.receive(head);
}
