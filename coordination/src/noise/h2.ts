/**
 * HTTP/2 inside the Noise channel: one server-side HTTP/2 session per upgraded
 * connection (node's `http2.performServerHandshake` on the plaintext Duplex), whose
 * streams are handed to a router together with the machine key the handshake proved.
 *
 * Limits (RFC 9113 and node's nghttp2 flood guards): a small SETTINGS_MAX_CONCURRENT_STREAMS,
 * bounded header lists, outstanding pings and SETTINGS entries, invalid frames and
 * refused streams; a request body must complete within `bodyTimeoutMs` (else 408 and the
 * stream is reset); a channel with no *active* stream — one whose request body has
 * completed — is closed after `idleTimeoutMs`, so stalled streams and pings never keep
 * a channel alive.
 */
import http2 from "node:http2";
import type { NoiseDuplex } from "@lattice/controlbase";

/** A request stream on the Noise channel, with the authenticated machine public key. */
export type ControlStreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  machinePublic: Uint8Array,
) => void;

/** Timer functions (injectable for tests). */
export interface H2Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What the channel cut off (a subset of the server's listener counters). */
export interface ControlH2Counters {
  /** Streams whose request body did not complete within the body timeout. */
  stalledStreams: number;
  /** Channels closed for having no active stream. */
  idleChannelsClosed: number;
  /** Channels ended by an HTTP/2 protocol error (floods, invalid frames). */
  channelErrors: number;
}

/** Limits of the inner HTTP/2 session. */
export interface ControlH2Options {
  /** Max concurrent streams per connection (default 16). */
  maxConcurrentStreams?: number;
  /**
   * Close a connection that has had no active request this long (default 5 minutes;
   * 0 disables). Open map streams are active; streams still waiting for their request
   * body are not.
   */
  idleTimeoutMs?: number;
  /** A request body must be complete this long after its stream opened (default 30 s; 0 disables). */
  bodyTimeoutMs?: number;
  counters?: ControlH2Counters;
  timers?: H2Timers;
}

const defaultTimers: H2Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Serves HTTP/2 on `conn`; returns the session (closed when the connection ends).
 * HTTP/2 protocol errors close the session and the connection; nothing is thrown.
 */
export function serveControlH2(conn: NoiseDuplex, handler: ControlStreamHandler, opts: ControlH2Options = {}): http2.ServerHttp2Session {
  const machinePublic = conn.transport.peerStatic;
  const counters = opts.counters ?? { stalledStreams: 0, idleChannelsClosed: 0, channelErrors: 0 };
  const timers = opts.timers ?? defaultTimers;
  const maxStreams = opts.maxConcurrentStreams ?? 16;
  const session = http2.performServerHandshake(conn, {
    settings: { maxConcurrentStreams: maxStreams, enablePush: false, maxHeaderListSize: 16 * 1024 },
    maxHeaderListPairs: 64,
    maxOutstandingPings: 10,
    maxSettings: 16,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 4 * maxStreams,
    peerMaxConcurrentStreams: maxStreams,
  });
  session.on("error", () => {
    counters.channelErrors++;
    conn.destroy();
  });
  session.on("close", () => {
    disarm();
    conn.destroy();
  });
  conn.on("close", () => {
    if (!session.destroyed) session.destroy();
  });

  const idle = opts.idleTimeoutMs ?? 5 * 60_000;
  const bodyTimeout = opts.bodyTimeoutMs ?? 30_000;
  const streams = new Set<http2.ServerHttp2Stream>();
  let active = 0;
  let idleTimer: unknown = null;
  function disarm(): void {
    if (idleTimer !== null) timers.clearTimeout(idleTimer);
    idleTimer = null;
  }
  function arm(): void {
    if (idle <= 0 || idleTimer !== null || active > 0 || session.destroyed) return;
    idleTimer = timers.setTimeout(() => {
      idleTimer = null;
      if (active > 0 || session.destroyed) return;
      counters.idleChannelsClosed++;
      for (const s of streams) if (!s.destroyed) s.close(http2.constants.NGHTTP2_CANCEL);
      // GOAWAY, then a hard close: a peer that does not read would hold a graceful close forever.
      session.close();
      timers.setTimeout(() => {
        if (!session.destroyed) session.destroy();
        conn.destroy();
      }, Math.min(idle, 5000));
    }, idle);
  }
  arm();

  session.on("stream", (stream, headers) => {
    streams.add(stream);
    stream.on("error", () => {});
    let bodyDone = false;
    let bodyTimer: unknown = null;
    if (bodyTimeout > 0) {
      bodyTimer = timers.setTimeout(() => {
        bodyTimer = null;
        if (bodyDone || stream.destroyed) return;
        counters.stalledStreams++;
        const reset = () => {
          if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
        };
        if (stream.headersSent || stream.closed) return reset();
        const data = Buffer.from(JSON.stringify({ error: `request body not complete within ${bodyTimeout} ms`, code: "body_timeout" }));
        stream.respond({ ":status": 408, "content-type": "application/json", "content-length": data.length });
        stream.end(data, reset);
        // In case the answer cannot be flushed (peer not reading): reset anyway.
        timers.setTimeout(reset, Math.min(bodyTimeout, 5000));
      }, bodyTimeout);
    }
    stream.once("end", () => {
      bodyDone = true;
      if (bodyTimer !== null) timers.clearTimeout(bodyTimer);
      bodyTimer = null;
      active++;
      disarm();
    });
    stream.once("close", () => {
      streams.delete(stream);
      if (bodyTimer !== null) timers.clearTimeout(bodyTimer);
      bodyTimer = null;
      if (bodyDone) {
        active--;
        arm();
      }
    });
    try {
      handler(stream, headers, machinePublic);
    } catch {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  });
  return session;
}
