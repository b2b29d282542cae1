/**
 * TCP forwarding: local (`ssh -L`, direct-tcpip channels, RFC 4254 §7.2) connects from the
 * daemon to the requested host:port; remote (`ssh -R`, tcpip-forward, RFC 4254 §7.1)
 * listens on the node and opens a forwarded-tcpip channel per accepted connection.
 * Remote listeners bind loopback only (OpenSSH's default GatewayPorts=no: "", "*",
 * "0.0.0.0", "localhost" and any non-loopback address mean 127.0.0.1); ports below 1024
 * need the session user to be root (as sshd). Both kinds need the rule's
 * AllowLocalPortForwarding / AllowRemotePortForwarding.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import type { Connection, ServerChannel } from "ssh2";

/** Connect timeout for -L targets. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Pipes a channel and a socket both ways; either side closing closes the other. */
export function splice(ch: ServerChannel, s: Socket): void {
  ch.on("error", () => s.destroy());
  s.on("error", () => ch.close());
  ch.pipe(s).pipe(ch);
  s.on("close", () => ch.close());
  ch.on("close", () => s.destroy());
}

/** Serves one direct-tcpip request. */
export function directTcpip(accept: () => ServerChannel, reject: () => void, host: string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535 || host.length === 0 || host.length > 255) return reject();
  const s = connect({ host, port });
  const t = setTimeout(() => s.destroy(), CONNECT_TIMEOUT_MS);
  s.once("error", () => {
    clearTimeout(t);
    reject();
  });
  s.once("connect", () => {
    clearTimeout(t);
    s.removeAllListeners("error");
    splice(accept(), s);
  });
}

function loopbackBind(addr: string): string {
  if (addr === "::1" || addr === "[::1]") return "::1";
  if (/^127\.\d+\.\d+\.\d+$/.test(addr)) return addr;
  return "127.0.0.1";
}

/** The remote forwards of one connection. */
export class RemoteForwards {
  private readonly listeners = new Map<string, Server>();
  constructor(
    private readonly conn: Connection,
    private readonly isRoot: boolean,
    private readonly max = 32,
  ) {}

  /** tcpip-forward: resolves the bound port, or null when refused. */
  add(bindAddr: string, bindPort: number): Promise<number | null> {
    if (!Number.isInteger(bindPort) || bindPort < 0 || bindPort > 65535) return Promise.resolve(null);
    if (bindPort !== 0 && bindPort < 1024 && !this.isRoot) return Promise.resolve(null);
    if (this.listeners.size >= this.max) return Promise.resolve(null);
    const host = loopbackBind(bindAddr);
    return new Promise((resolve) => {
      const srv = createServer((s) => {
        s.pause();
        s.on("error", () => s.destroy());
        const port = (srv.address() as { port: number }).port;
        this.conn.forwardOut(bindAddr, bindPort === 0 ? port : bindPort, s.remoteAddress ?? "", s.remotePort ?? 0, (err, ch) => {
          if (err) return s.destroy();
          splice(ch, s);
          s.resume();
        });
      });
      srv.maxConnections = 256;
      srv.once("error", () => resolve(null));
      srv.listen({ host, port: bindPort }, () => {
        srv.on("error", () => undefined); // accept errors (EMFILE…) must not end the daemon
        const port = (srv.address() as { port: number }).port;
        this.listeners.set(`${bindAddr}:${bindPort === 0 ? port : bindPort}`, srv);
        resolve(port);
      });
    });
  }

  /** cancel-tcpip-forward: true when a listener was closed. */
  cancel(bindAddr: string, bindPort: number): boolean {
    const key = `${bindAddr}:${bindPort}`;
    const srv = this.listeners.get(key);
    if (!srv) return false;
    srv.close();
    this.listeners.delete(key);
    return true;
  }

  /** Closes every listener. */
  closeAll(): void {
    for (const s of this.listeners.values()) s.close();
    this.listeners.clear();
  }
}
