/**
 * HTTP/2 inside the Noise channel: one server-side HTTP/2 session per upgraded
 * connection (node's `http2.performServerHandshake` on the plaintext Duplex), whose
 * streams are handed to a router together with the machine key the handshake proved.
 */
import http2 from "node:http2";
import type { NoiseDuplex } from "@lattice/control-client";

/** A request stream on the Noise channel, with the authenticated machine public key. */
export type ControlStreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  machinePublic: Uint8Array,
) => void;

/** Limits of the inner HTTP/2 session. */
export interface ControlH2Options {
  /** Max concurrent streams per connection (default 100). */
  maxConcurrentStreams?: number;
  /**
   * Close a connection that has had no open request and no traffic for this long
   * (default 5 minutes; 0 disables). Open map streams send keep-alives, so they stay.
   */
  idleTimeoutMs?: number;
}

/**
 * Serves HTTP/2 on `conn`; returns the session (closed when the connection ends).
 * HTTP/2 protocol errors close the session and the connection; nothing is thrown.
 */
export function serveControlH2(conn: NoiseDuplex, handler: ControlStreamHandler, opts: ControlH2Options = {}): http2.ServerHttp2Session {
  const machinePublic = conn.transport.peerStatic;
  const session = http2.performServerHandshake(conn, {
    settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 100, enablePush: false },
  });
  session.on("error", () => conn.destroy());
  session.on("close", () => conn.destroy());
  conn.on("close", () => {
    if (!session.destroyed) session.destroy();
  });
  let open = 0;
  const idle = opts.idleTimeoutMs ?? 5 * 60_000;
  if (idle > 0) {
    session.setTimeout(idle, () => {
      if (open === 0) session.close();
    });
  }
  session.on("stream", (stream, headers) => {
    open++;
    stream.on("close", () => open--);
    stream.on("error", () => {});
    try {
      handler(stream, headers, machinePublic);
    } catch {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  });
  return session;
}
