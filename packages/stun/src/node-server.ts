/**
 * Node edge for a STUN Binding server on UDP (RFC 8489 §6.3.1): answers each Binding
 * request with the sender's address in XOR-MAPPED-ADDRESS (IPv4-mapped IPv6 senders are
 * answered as IPv4). Everything else is dropped and counted by reason; nothing thrown.
 * One dual-stack socket when IPv6 is available, else IPv4. The codec is sans-IO
 * (./binding.ts); this file owns the socket.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { parseIp } from "@lattice/netaddr";
import { createBindingResponse, parseBindingRequest } from "./binding.js";

/** Counters of a {@link StunServer}; `dropped` is keyed by error code or reason. */
export interface StunStats {
  requests: number;
  responses: number;
  dropped: Record<string, number>;
}

/** A running STUN server. */
export interface StunServer {
  /** The bound UDP port. */
  readonly port: number;
  readonly stats: StunStats;
  close(): Promise<void>;
}

function bind(type: "udp4" | "udp6", host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type, reuseAddr: false, ipv6Only: false });
    s.once("error", reject);
    s.bind(port, host || (type === "udp6" ? "::" : "0.0.0.0"), () => {
      s.off("error", reject);
      resolve(s);
    });
  });
}

/**
 * Starts the STUN server on `host:port` (host "" = all interfaces, dual-stack when
 * possible; port 0 = any).
 * @throws the socket's bind error (e.g. `EADDRINUSE`, `EACCES`).
 */
export async function startStunServer(host: string, port: number): Promise<StunServer> {
  let sock: Socket;
  try {
    sock = await bind(host.includes(".") ? "udp4" : "udp6", host, port);
  } catch (e) {
    if (host !== "" || (e as NodeJS.ErrnoException).code === "EADDRINUSE") throw e;
    sock = await bind("udp4", "", port);
  }
  const stats: StunStats = { requests: 0, responses: 0, dropped: {} };
  const drop = (why: string): void => {
    stats.dropped[why] = (stats.dropped[why] ?? 0) + 1;
  };
  sock.on("error", () => drop("socket_error"));
  sock.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
    const req = parseBindingRequest(msg);
    if (!req.ok) return drop(req.error.code);
    stats.requests++;
    const ip = parseIp(rinfo.address, true);
    if (!ip) return drop("bad_source");
    let mapped = { family: ip.family, ip: ip.bytes, port: rinfo.port };
    const b = ip.bytes;
    if (ip.family === 6 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
      mapped = { family: 4, ip: b.slice(12), port: rinfo.port };
    }
    sock.send(createBindingResponse(req.value.transactionId, mapped), rinfo.port, rinfo.address, (err) => {
      if (err) drop("send_error");
      else stats.responses++;
    });
  });
  return {
    port: sock.address().port,
    stats,
    close: () => new Promise((r) => sock.close(() => r())),
  };
}
