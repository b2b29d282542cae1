/**
 * Answering a raw socket that the HTTP layer has let go of (an upgrade or CONNECT we do
 * not serve, a malformed request, a timeout): one short HTTP/1.1 answer, then the socket
 * is closed — after the answer is flushed, or after `graceMs` at the latest if the peer
 * does not read it. Never throws.
 */
import type { Duplex } from "node:stream";

/** Writes `HTTP/1.1 <status> <reason>` with a one-line text body and closes the socket. */
export function refuseSocket(socket: Duplex, status: number, reason: string, message: string, graceMs: number): void {
  socket.on("error", () => {});
  if (socket.destroyed) return;
  const body = message + "\n";
  const timer = setTimeout(() => socket.destroy(), Math.max(1, graceMs));
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}
