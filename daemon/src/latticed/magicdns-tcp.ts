/**
 * DNS over TCP at 100.100.100.100:53 and [fd7a:115c:a1e0::53]:53 (RFC 7766) without a
 * userspace TCP stack: a stateless hairpin through the kernel's own TCP.
 *
 * latticed listens with an ordinary kernel TCP socket on port Q (port 0 → the kernel
 * picks; dual-stack `::`, else `0.0.0.0`). In the TUN's outbound hook
 * ({@link TcpHairpin.outbound}):
 * - a client segment S:P → quad-100:53 is rewritten to quad-100:P → S:Q and written back
 *   into the TUN: the kernel sees a connection from quad-100:P to its own address S:Q;
 * - the listener's segments S:Q → quad-100:P (routed to lattice0, since quad-100 lies in
 *   the tailnet ranges) are rewritten to quad-100:53 → S:P and written back: the client
 *   sees its peer as quad-100:53.
 * Only the addresses swap (the one's-complement sums of the IP header and the TCP
 * pseudo-header do not change) and one port changes (RFC 1624 incremental update), so no
 * per-connection state lives in latticed's data path; the kernel does the TCP.
 *
 * Trust: the listener takes a connection only when its remote address is a quad-100
 * address, and such segments come only from our own hairpin — peers cannot send from
 * quad-100 (WireGuard's AllowedIPs check, and the engine drops inbound packets with a
 * quad-100 source even from a peer whose AllowedIPs cover it, e.g. an exit node); other
 * connections to Q (LAN, loopback) are closed at once and counted. A client source port
 * equal to Q is impossible (the kernel never hands out a bound port), so the two
 * directions cannot be confused.
 *
 * Limits (Listener hygiene): {@link MAX_TCP_CONNS} connections (more are closed at
 * accept), {@link TCP_IDLE_MS} idle timeout (RFC 7766 §6.2.3 asks for a few seconds), at
 * most {@link MAX_TCP_INFLIGHT} queries in flight per connection (further messages wait
 * in the socket: reading pauses), messages of at most {@link MAX_TCP_MESSAGE} bytes (more
 * → the connection is closed), and a client that does not read its replies stops being
 * read once {@link MAX_TCP_WRITE_BUFFER} bytes wait for it (then the idle timeout ends
 * it). Replies may go out of order (RFC 7766 §7).
 */
import net from "node:net";
import { TcpFramer, frameMessage } from "@lattice/dns";
import { rewritePort, tcpView } from "./divert.js";

/** Connections open at most; more are closed on accept (counted). */
export const MAX_TCP_CONNS = 64;
/** A connection without a complete query or a reply pending for this long is closed, ms. */
export const TCP_IDLE_MS = 10_000;
/** Queries answered concurrently per connection. */
export const MAX_TCP_INFLIGHT = 16;
/** Largest query message over TCP, bytes (the resolver's MAX_QUERY). */
export const MAX_TCP_MESSAGE = 4096;
/** Replies buffered for a client that does not read, bytes; above it the connection's queries are not read. */
export const MAX_TCP_WRITE_BUFFER = 64 * 1024;

const QUAD100_V4 = new Uint8Array([100, 100, 100, 100]);
const QUAD100_V6 = new Uint8Array([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]);

function isQuad100(ip: Uint8Array): boolean {
  const q = ip.length === 4 ? QUAD100_V4 : QUAD100_V6;
  if (ip.length !== q.length) return false;
  for (let i = 0; i < q.length; i++) if (ip[i] !== q[i]) return false;
  return true;
}

/** True when IP packet `p`'s source address is 100.100.100.100 or fd7a:115c:a1e0::53. */
export function fromQuad100(p: Uint8Array): boolean {
  const v = p.length > 0 ? p[0]! >> 4 : 0;
  if (v === 4) return p.length >= 20 && isQuad100(p.subarray(12, 16));
  if (v === 6) return p.length >= 40 && isQuad100(p.subarray(8, 24));
  return false;
}

/** Swaps the source and destination addresses of `p` in place (same length, so checksums hold). */
function swapAddrs(p: Uint8Array, family: 4 | 6): void {
  const [s, d, n] = family === 4 ? [12, 16, 4] : [8, 24, 16];
  for (let i = 0; i < n; i++) {
    const t = p[s + i]!;
    p[s + i] = p[d + i]!;
    p[d + i] = t;
  }
}

/** Counters of the TCP side. */
export interface DnsTcpStats {
  /** Segments rewritten client → listener / listener → client. */
  hairpinIn: number;
  hairpinOut: number;
  /** Segments to quad-100:53 while no listener is up (dropped). */
  hairpinNoListener: number;
  tcpAccepted: number;
  /** Connections not from quad-100 (closed at accept). */
  tcpRefusedSource: number;
  /** Connections over MAX_TCP_CONNS (closed at accept). */
  tcpRefusedFull: number;
  tcpIdleClosed: number;
  /** Streams that broke the framing (zero or oversized length) — closed. */
  tcpBadFrame: number;
  tcpQueries: number;
}

/** The pure packet rewrite (see the file comment). */
export class TcpHairpin {
  /** The listener's port, 0 = no listener (segments to quad-100:53 are dropped). */
  port = 0;

  constructor(private readonly stats: DnsTcpStats) {}

  /**
   * A packet read from the TUN: when it is TCP to quad-100:53 or from the listener to
   * quad-100, rewrites it in place and returns "deliver" (write it back into the TUN);
   * "drop" for TCP to quad-100:53 without a listener; "pass" for everything else.
   */
  outbound(p: Uint8Array): "deliver" | "drop" | "pass" {
    const t = tcpView(p);
    if (!t || !isQuad100(t.dst)) return "pass";
    if (this.port !== 0 && t.sport === this.port) {
      // Listener → client: quad-100:P ← S:Q becomes quad-100:53 → S:P.
      swapAddrs(p, t.family);
      rewritePort(p, t.tcp, t.tcp, 53);
      this.stats.hairpinOut++;
      return "deliver";
    }
    if (t.dport !== 53) return "pass";
    if (this.port === 0) {
      this.stats.hairpinNoListener++;
      return "drop";
    }
    // Client → listener: S:P → quad-100:53 becomes quad-100:P → S:Q.
    swapAddrs(p, t.family);
    rewritePort(p, t.tcp, t.tcp + 2, this.port);
    this.stats.hairpinIn++;
    return "deliver";
  }
}

/** Answers one query message arriving over TCP; null = no answer (the query is dropped). Never rejects. */
export type TcpAnswer = (query: Uint8Array) => Promise<Uint8Array | null>;

/** Options of {@link DnsTcpServer}. */
export interface DnsTcpServerOptions {
  answer: TcpAnswer;
  stats: DnsTcpStats;
  maxConns?: number;
  idleMs?: number;
  maxInflight?: number;
  /** Which remote addresses may connect; default: the quad-100 addresses only (tests widen it). */
  acceptFrom?: (remoteAddress: string | undefined) => boolean;
}

function remoteIsQuad100(addr: string | undefined): boolean {
  return addr === "100.100.100.100" || addr === "::ffff:100.100.100.100" || addr === "fd7a:115c:a1e0::53";
}

/** The kernel TCP listener behind the hairpin (see the file comment). */
export class DnsTcpServer {
  readonly #server: net.Server;
  readonly #conns = new Set<net.Socket>();

  private constructor(server: net.Server, private readonly o: DnsTcpServerOptions) {
    this.#server = server;
    server.on("connection", (s) => this.#accept(s));
    server.on("error", () => {
      /* accept errors (EMFILE …) are transient; the server keeps listening */
    });
  }

  /** Listens on port 0 of `::` (dual stack), else `0.0.0.0`; resolves with the server. */
  static async listen(o: DnsTcpServerOptions): Promise<DnsTcpServer> {
    for (const host of ["::", "0.0.0.0"]) {
      const server = net.createServer({ pauseOnConnect: false, noDelay: true });
      const ok = await new Promise<boolean>((resolve) => {
        server.once("error", () => resolve(false));
        server.listen({ host, port: 0, ipv6Only: false, backlog: 128 }, () => resolve(true));
      });
      if (ok) return new DnsTcpServer(server, o);
      server.close();
    }
    throw new Error("MagicDNS TCP: cannot listen on :: or 0.0.0.0");
  }

  /** The port Q. */
  get port(): number {
    const a = this.#server.address();
    return typeof a === "object" && a !== null ? a.port : 0;
  }

  /** Open connections. */
  get connections(): number {
    return this.#conns.size;
  }

  #accept(s: net.Socket): void {
    const st = this.o.stats;
    s.on("error", () => {});
    if (!(this.o.acceptFrom ?? remoteIsQuad100)(s.remoteAddress)) {
      st.tcpRefusedSource++;
      s.destroy();
      return;
    }
    if (this.#conns.size >= (this.o.maxConns ?? MAX_TCP_CONNS)) {
      st.tcpRefusedFull++;
      s.destroy();
      return;
    }
    st.tcpAccepted++;
    this.#conns.add(s);
    s.on("close", () => this.#conns.delete(s));
    const framer = new TcpFramer(MAX_TCP_MESSAGE);
    const maxInflight = this.o.maxInflight ?? MAX_TCP_INFLIGHT;
    const queue: Uint8Array[] = [];
    let inflight = 0;
    let ended = false;
    const idleMs = this.o.idleMs ?? TCP_IDLE_MS;
    s.setTimeout(idleMs, () => {
      if (inflight > 0) {
        s.setTimeout(idleMs); // waiting for an upstream (it has its own timeout): re-arm
        return;
      }
      st.tcpIdleClosed++;
      s.destroy();
    });
    const pump = (): void => {
      while (inflight < maxInflight && queue.length > 0) {
        const q = queue.shift()!;
        inflight++;
        st.tcpQueries++;
        void this.o.answer(q).then((r) => {
          inflight--;
          if (r && !s.destroyed && r.length <= 65535) s.write(frameMessage(r));
          pump();
        });
      }
      const room = queue.length < maxInflight && s.writableLength < MAX_TCP_WRITE_BUFFER;
      if (room && s.isPaused()) s.resume();
      else if (!room && !s.isPaused()) s.pause();
      if (ended && inflight === 0 && queue.length === 0 && !s.destroyed) s.end();
    };
    s.on("data", (chunk: Buffer) => {
      const r = framer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      queue.push(...r.messages);
      if (r.error) {
        st.tcpBadFrame++;
        s.destroy();
        return;
      }
      pump();
    });
    s.on("drain", pump);
    s.on("end", () => {
      ended = true;
      pump();
    });
  }

  /** Closes the listener and every connection. */
  close(): void {
    this.#server.close();
    for (const s of this.#conns) s.destroy();
    this.#conns.clear();
  }
}
