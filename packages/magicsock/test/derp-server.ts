// A minimal DERP server edge for tests: node:http upgrade → @lattice/derp's DerpServer
// core (the real relay app lives in derp/ and is not imported by packages).
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DerpServer, type ServerConn } from "@lattice/derp";

export interface TestDerp {
  readonly port: number;
  readonly server: DerpServer;
  close(): Promise<void>;
}

const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

export async function startDerp(): Promise<TestDerp> {
  const core = new DerpServer({ privateKey: random(32), random, now: () => performance.now() });
  const http: Server = createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  const sockets = new Set<import("node:stream").Duplex>();
  http.on("upgrade", (req, socket, head: Buffer) => {
    if (req.url !== "/derp" || req.headers.upgrade?.toLowerCase() !== "derp") return socket.destroy();
    sockets.add(socket);
    socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n");
    let conn: ServerConn | null = null;
    const flush = (): void => {
      if (conn === null) return;
      for (let f = conn.pull(); f !== null; f = conn.pull()) socket.write(f);
    };
    conn = core.newConn({ ip16: new Uint8Array(16), port: 0 }, { wake: () => queueMicrotask(flush), close: () => socket.destroy() });
    socket.on("data", (d: Buffer) => conn!.receive(d));
    socket.on("close", () => {
      sockets.delete(socket);
      conn!.closedByPeer();
    });
    socket.on("error", () => {});
    if (head.length > 0) conn.receive(head);
    flush();
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  return {
    port: (http.address() as AddressInfo).port,
    server: core,
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      http.close(() => r());
    }),
  };
}
