/** HTTP over the admin unix socket, used by the admin commands of `lattice-control`. */
import http from "node:http";

/** Default admin socket path (also the server's default). */
export const DEFAULT_SOCKET = "/var/run/lattice/control.sock";

/** An error answer from the server (or an unreachable server). */
export class AdminError extends Error {
  /** Stable code from the server's {error: {code}} or "unreachable". */
  readonly code: string;
  /** HTTP status, 0 when unreachable. */
  readonly status: number;
  constructor(code: string, message: string, status: number) {
    super(message);
    this.name = "AdminError";
    this.code = code;
    this.status = status;
  }
}

/**
 * Sends one request to the admin API; resolves with the parsed JSON reply. `body` is sent
 * as JSON, or as it is when `contentType` is given (it must then be a string).
 */
export function adminRequest(socketPath: string, method: string, path: string, body?: unknown, contentType?: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(contentType ? String(body) : JSON.stringify(body));
    const req = http.request(
      {
        socketPath,
        method,
        path: `/api/v1${path}`,
        headers: data ? { "content-type": contentType ?? "application/json", "content-length": data.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            return reject(new AdminError("bad_reply", `unexpected reply (${res.statusCode}): ${text.slice(0, 200)}`, res.statusCode ?? 0));
          }
          if ((res.statusCode ?? 500) >= 400) {
            return reject(new AdminError(json?.error?.code ?? "error", json?.error?.message ?? `HTTP ${res.statusCode}`, res.statusCode ?? 0));
          }
          resolve(json);
        });
      },
    );
    req.on("error", (e: NodeJS.ErrnoException) => {
      const hint = e.code === "EACCES" ? " (permission denied: the admin socket is root only)" : " (is `lattice-control serve` running, with the same --socket?)";
      reject(new AdminError("unreachable", `cannot reach the server at ${socketPath}: ${e.code ?? e.message}${hint}`, 0));
    });
    req.end(data);
  });
}
