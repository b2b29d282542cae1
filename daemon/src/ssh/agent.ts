/**
 * ssh-agent forwarding (OpenSSH PROTOCOL.agent): a Unix socket in a fresh 0700 directory
 * owned by the session user (socket 0600, as Tailscale and OpenSSH), whose every
 * connection is carried over a new `auth-agent@openssh.com` channel opened back to the
 * client (see ssh2-internals.ts). Removed when the SSH connection ends.
 */
import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Connection } from "ssh2";
import { openAgentChannel } from "./ssh2-internals.js";
import type { LocalUser } from "./users.js";

/** A listening forwarded-agent socket. */
export interface AgentListener {
  path: string;
  close(): void;
}

/** Max simultaneous agent connections per SSH connection. */
const MAX_AGENT_CONNS = 16;

/** Creates the agent socket for `user` on `conn`. */
export function startAgentListener(conn: Connection, user: LocalUser): Promise<AgentListener> {
  const dir = mkdtempSync(join(tmpdir(), "lattice-ssh-agent-"));
  const path = join(dir, "agent.sock");
  const socks = new Set<Socket>();
  const srv: Server = createServer((s) => {
    if (socks.size >= MAX_AGENT_CONNS) return s.destroy();
    socks.add(s);
    s.on("close", () => socks.delete(s));
    s.on("error", () => s.destroy());
    s.pause();
    try {
      openAgentChannel(conn, (err, ch) => {
        if (err || !ch) return s.destroy();
        ch.on("error", () => s.destroy());
        s.pipe(ch).pipe(s);
        s.resume();
        s.on("close", () => ch.close());
      });
    } catch {
      s.destroy();
    }
  });
  const close = (): void => {
    srv.close();
    for (const s of socks) s.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    srv.once("error", (e) => {
      close();
      reject(e);
    });
    srv.listen(path, () => {
      srv.on("error", () => undefined); // accept errors must not end the daemon
      try {
        chmodSync(path, 0o600);
        chownSync(path, user.uid, user.gid);
        chownSync(dir, user.uid, user.gid);
      } catch (e) {
        if ((process.getuid?.() ?? -1) === 0) {
          close();
          return reject(e as Error);
        }
      }
      resolve({ path, close });
    });
  });
}
