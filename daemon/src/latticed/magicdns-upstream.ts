/**
 * MagicDNS's way out: the host's nameservers from resolv.conf, resolver addresses as the
 * DNSConfig spells them, and {@link DgramUpstream}, which forwards one query over UDP (and
 * over TCP when the UDP answer is truncated, {@link tcpQuery}).
 */
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import net from "node:net";
import { TcpFramer, frameMessage } from "@lattice/dns";
import { parseIp } from "@lattice/netaddr";

/** 100.100.100.100. */
export const QUAD100_V4 = new Uint8Array([100, 100, 100, 100]);
/** fd7a:115c:a1e0::53. */
export const QUAD100_V6 = new Uint8Array([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]);

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether `bytes` (4 or 16) is one of MagicDNS's own addresses: 100.100.100.100 (also as
 * ::ffff:100.100.100.100) or fd7a:115c:a1e0::53. Forwarding there would send a query back
 * into quad-100 (a loop that fills the forwarder until every query times out).
 */
export function isMagicDnsAddr(bytes: Uint8Array): boolean {
  if (same(bytes, QUAD100_V4) || same(bytes, QUAD100_V6)) return true;
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff && same(bytes.subarray(12), QUAD100_V4);
}

/** Sends one query to the upstream resolvers; resolves the reply, or null (timeout, error). Never rejects. */
export interface Upstream {
  query(msg: Uint8Array, timeoutMs: number): Promise<Uint8Array | null>;
}

/** A plain-DNS resolver address. */
export interface ResolverAddr {
  host: string;
  port: number;
}

/**
 * A DNSResolver `Addr` as a UDP address: "IP", "IP:port", "[IPv6]:port", "IPv6"; null for
 * DoH/DoT URLs, anything that isn't an IP address, and MagicDNS's own addresses
 * ({@link isMagicDnsAddr}: an admin resolver or split-DNS route naming 100.100.100.100
 * would otherwise make quad-100 forward to itself).
 */
export function parseResolverAddr(addr: string): ResolverAddr | null {
  let host = addr;
  let port = 53;
  const m6 = /^\[([^\]]+)\]:(\d{1,5})$/.exec(addr);
  const m4 = /^([0-9.]+):(\d{1,5})$/.exec(addr);
  if (m6) [host, port] = [m6[1]!, Number(m6[2])];
  else if (m4) [host, port] = [m4[1]!, Number(m4[2])];
  const ip = parseIp(host);
  if (port < 1 || port > 65535 || ip === null || isMagicDnsAddr(ip.bytes)) return null;
  return { host, port };
}

/**
 * The nameservers of a resolv.conf text (`nameserver ADDR` lines, in order; the MagicDNS
 * addresses left out so quad-100 never forwards to itself; invalid addresses skipped).
 */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const ip = parseIp(m[1]!, true);
    if (!ip) continue;
    if (isMagicDnsAddr(ip.bytes)) continue;
    out.push(m[1]!);
  }
  return out;
}

/** The host's upstream nameservers from `path` (default /etc/resolv.conf); [] when unreadable. */
export function readUpstreams(path = "/etc/resolv.conf"): string[] {
  try {
    return parseResolvConf(readFileSync(path, "utf8"));
  } catch {
    return [];
  }
}

/**
 * Forwards over UDP (node:dgram) to `servers` (IP text, port 53 unless `port` is given):
 * a fresh connected socket per query (a random source port from the kernel), the reply
 * accepted only from that server with the query's ID and the QR bit; servers tried in
 * order, each for an equal share of the timeout. A reply with TC set is asked again over
 * TCP from the same server within the rest of that share ({@link tcpQuery}); if that
 * fails the truncated reply stands. Sockets are plain (no bind to an interface, no
 * SO_MARK): the kernel routes them, so resolvers on tailnet or routed addresses are
 * reached through lattice0 like any host traffic.
 */
export class DgramUpstream implements Upstream {
  readonly servers: readonly ResolverAddr[];

  /** `servers`: IP text (port `port`, default 53) or resolver addresses. */
  constructor(servers: readonly (string | ResolverAddr)[], port = 53) {
    this.servers = servers.map((s) => (typeof s === "string" ? { host: s, port } : s));
  }

  async query(msg: Uint8Array, timeoutMs: number): Promise<Uint8Array | null> {
    if (this.servers.length === 0 || msg.length < 12) return null;
    const share = Math.max(1, Math.floor(timeoutMs / this.servers.length));
    for (const s of this.servers) {
      const t0 = Date.now();
      const r = await this.#one(s.host, s.port, msg, share);
      if (r && (r[2]! & 0x02) !== 0) {
        const left = share - (Date.now() - t0);
        const full = left > 0 ? await tcpQuery(s.host, s.port, msg, left) : null;
        return full ?? r;
      }
      if (r) return r;
    }
    return null;
  }

  #one(server: string, port: number, msg: Uint8Array, timeoutMs: number): Promise<Uint8Array | null> {
    return new Promise((resolve) => {
      const v6 = server.includes(":");
      const sock = dgram.createSocket({ type: v6 ? "udp6" : "udp4" });
      let done = false;
      const finish = (r: Uint8Array | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          sock.close();
        } catch {
          // already closed
        }
        resolve(r);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      sock.on("error", () => finish(null));
      sock.on("message", (m) => {
        // A connected socket only receives from the server; still check ID and QR.
        if (m.length >= 12 && m[0] === msg[0] && m[1] === msg[1] && (m[2]! & 0x80) !== 0) finish(new Uint8Array(m));
      });
      sock.connect(port, server, () => {
        if (done) return;
        sock.send(msg, (err) => {
          if (err) finish(null);
        });
      });
    });
  }
}

/** Largest reply read from an upstream over TCP, bytes (the 16-bit length's limit). */
const MAX_TCP_REPLY = 65535;

/**
 * One query over TCP (RFC 7766) to `host`:`port`: resolves the first reply with the
 * query's ID and QR set, or null (timeout, refused, closed, a broken frame). Never rejects.
 */
export function tcpQuery(host: string, port: number, msg: Uint8Array, timeoutMs: number): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const framer = new TcpFramer(MAX_TCP_REPLY);
    let done = false;
    const sock = net.connect({ host, port, noDelay: true });
    const finish = (r: Uint8Array | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.on("error", () => finish(null));
    sock.on("close", () => finish(null));
    sock.on("connect", () => sock.write(frameMessage(msg)));
    sock.on("data", (chunk: Buffer) => {
      const r = framer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      for (const m of r.messages) if (m.length >= 12 && m[0] === msg[0] && m[1] === msg[1] && (m[2]! & 0x80) !== 0) return finish(m);
      if (r.error) finish(null);
    });
  });
}
