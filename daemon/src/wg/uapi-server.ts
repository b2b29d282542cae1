/**
 * The UAPI unix socket server: /var/run/wireguard/IFNAME.sock (directory 0755, socket
 * 0700 through umask 077, as wireguard-go). Each connection may carry several requests
 * in sequence; bytes are framed by UapiFramer and parsed by parseUapiRequest.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { DeviceSnapshot, DeviceUpdate } from "@lattice/wireguard";
import { formatUapiErrno, formatUapiGet, parseUapiRequest, UapiErrno, UapiError, UapiFramer } from "@lattice/wireguard";
import type { Logger } from "./log.js";

/** The default socket directory. */
export const UAPI_SOCKET_DIR = "/var/run/wireguard";

/** What the server calls for requests. */
export interface UapiHandler {
  /** The state for `get=1`. */
  snapshot(): DeviceSnapshot;
  /** Applies a `set=1`; throws UapiError to reply with its errno. */
  apply(update: DeviceUpdate): void;
}

/** Typed error of the UAPI listener setup. */
export class UapiListenError extends Error {
  /** Stable code. */
  readonly code: "ERR_UAPI_IN_USE" | "ERR_UAPI_LISTEN";
  /** Creates the error. */
  constructor(code: "ERR_UAPI_IN_USE" | "ERR_UAPI_LISTEN", message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "UapiListenError";
    this.code = code;
  }
}

/** Path of the socket of interface `ifname` in `dir`. */
export function uapiSocketPath(ifname: string, dir = UAPI_SOCKET_DIR): string {
  return path.join(dir, `${ifname}.sock`);
}

function listenOnce(server: net.Server, sockPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error): void => reject(e);
    server.once("error", onErr);
    const old = process.umask(0o077);
    try {
      server.listen(sockPath, () => {
        server.off("error", onErr);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
}

function isAlive(sockPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(sockPath);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

/** A listening UAPI server. */
export class UapiServer {
  #watcher: fs.FSWatcher | null = null;
  #closed = false;

  private constructor(
    private readonly server: net.Server,
    /** The socket path. */
    readonly path: string,
    private readonly conns: Set<net.Socket>,
  ) {}

  /**
   * Creates the directory (0755) and listens on `sockPath`. A stale socket file (nobody
   * answers) is replaced; a live one is ERR_UAPI_IN_USE.
   */
  static async listen(sockPath: string, handler: UapiHandler, log: Logger): Promise<UapiServer> {
    try {
      fs.mkdirSync(path.dirname(sockPath), { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new UapiListenError("ERR_UAPI_LISTEN", `creating ${path.dirname(sockPath)}: ${(e as Error).message}`, e);
    }
    const conns = new Set<net.Socket>();
    const server = net.createServer((sock) => {
      conns.add(sock);
      sock.once("close", () => conns.delete(sock));
      serveConnection(sock, handler, log);
    });
    try {
      await listenOnce(server, sockPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") {
        throw new UapiListenError("ERR_UAPI_LISTEN", `listening on ${sockPath}: ${(e as Error).message}`, e);
      }
      if (await isAlive(sockPath)) throw new UapiListenError("ERR_UAPI_IN_USE", `UAPI socket ${sockPath} is in use by another process`);
      try {
        fs.unlinkSync(sockPath);
        await listenOnce(server, sockPath);
      } catch (e2) {
        throw new UapiListenError("ERR_UAPI_LISTEN", `listening on ${sockPath}: ${(e2 as Error).message}`, e2);
      }
    }
    const s = new UapiServer(server, sockPath, conns);
    return s;
  }

  /** Calls `onGone` once if the socket file is deleted (wireguard-go then shuts down). */
  watchRemoval(onGone: () => void): void {
    const dir = path.dirname(this.path);
    const base = path.basename(this.path);
    this.#watcher = fs.watch(dir, (_ev, name) => {
      if (this.#closed || (name !== null && name !== base)) return;
      if (!fs.existsSync(this.path)) {
        this.#watcher?.close();
        this.#watcher = null;
        onGone();
      }
    });
    this.#watcher.on("error", () => {});
  }

  /** Stops listening, closes connections and removes the socket file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    this.server.close();
    for (const c of this.conns) c.destroy();
    try {
      fs.unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

/** Serves one connection: requests in sequence until EOF or a fatal framing error. */
export function serveConnection(sock: net.Socket, handler: UapiHandler, log: Logger): void {
  const framer = new UapiFramer();
  const handle = (text: string): string => {
    try {
      const req = parseUapiRequest(text);
      if (req.op === "get") return formatUapiGet(handler.snapshot());
      handler.apply(req.update);
      return formatUapiErrno(0);
    } catch (e) {
      if (e instanceof UapiError) {
        log.error(`UAPI request failed: ${e.message}`);
        return formatUapiErrno(e.errno);
      }
      log.error(`UAPI request failed: ${(e as Error).stack ?? String(e)}`);
      return formatUapiErrno(UapiErrno.UNKNOWN);
    }
  };
  const run = (frames: ReturnType<UapiFramer["push"]>): boolean => {
    for (const f of frames) {
      if (f.type === "request") sock.write(handle(f.text));
      else {
        log.debug(`UAPI framing error: ${f.error.message}`);
        if (f.reply) sock.write(formatUapiErrno(f.error.errno));
        if (f.close) {
          sock.end();
          return false;
        }
      }
    }
    return true;
  };
  sock.on("data", (chunk: Buffer) => {
    if (!run(framer.push(chunk))) sock.removeAllListeners("data");
  });
  sock.on("end", () => {
    run(framer.end());
    sock.end();
  });
  sock.on("error", (e) => log.debug(`UAPI connection error: ${e.message}`));
}
