/**
 * Prepares the admin socket's path before `listen`: its directory exists (created 0700),
 * and a socket file left by a crashed server is taken over, while one a live server
 * answers on, or a path that is not a socket at all, is refused.
 */
import net from "node:net";
import { lstatSync, unlinkSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { describeSystemError, StartupError } from "../errors.js";
import { ensureDirectory } from "./files.js";

/** How long to wait for a connect to an existing socket before calling it live. */
const PROBE_TIMEOUT_MS = 1000;

/**
 * What an existing unix socket answers: `live` when something accepts (or is too busy to:
 * EAGAIN, or no answer within 1 s), `stale` when nothing listens (ECONNREFUSED) or it is gone.
 */
export function probeUnixSocket(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<"live" | "stale" | { error: unknown }> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (r: "live" | "stale" | { error: unknown }) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done("live"), timeoutMs);
    s.once("connect", () => done("live"));
    s.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ECONNREFUSED" || e.code === "ENOENT") done("stale");
      else if (e.code === "EAGAIN") done("live");
      else done({ error: e });
    });
  });
}

/**
 * Makes `path` ready for `listen`: creates its directory (0700) when missing and removes
 * a stale socket file. Bounded: one probe, at most one unlink.
 * @throws {StartupError} `socket_in_use` when a server answers on it; `socket_unavailable`
 *   when the directory cannot be created or the path exists and is not a socket.
 */
export async function claimSocketPath(path: string): Promise<void> {
  const ref = { code: "socket_unavailable" as const, setting: "--socket", value: path };
  try {
    ensureDirectory(dirname(path), ref);
  } catch (e) {
    // The default lives under /var/run: say how to run without root.
    if (e instanceof StartupError && /\(EACCES\)$/.test(e.message)) throw new StartupError(e.code as "socket_unavailable", e.setting, e.value, `${e.message.slice(`${e.setting} ${e.value}: `.length)} (run as root or pass --socket PATH)`);
    throw e;
  }
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new StartupError("socket_unavailable", "--socket", path, `cannot access it: ${describeSystemError(e)}`);
  }
  if (!st.isSocket()) throw new StartupError("socket_unavailable", "--socket", path, "exists and is not a socket; remove it or choose another --socket");
  const r = await probeUnixSocket(path);
  if (r === "live") {
    throw new StartupError("socket_in_use", "--socket", path, "another server is listening on this admin socket (stop it first, or choose another --socket)");
  }
  if (r !== "stale") throw new StartupError("socket_unavailable", "--socket", path, `cannot tell whether a server listens on it: ${describeSystemError(r.error)}`);
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new StartupError("socket_unavailable", "--socket", path, `cannot remove the stale socket: ${describeSystemError(e)}`);
  }
}
