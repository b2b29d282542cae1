/**
 * Local account lookup (name → uid, gid, home, login shell) through `getent passwd`, so
 * NSS sources (LDAP, sssd, systemd-homed) resolve exactly as they do for `login`.
 */
import { execFile } from "node:child_process";

/** A local account. */
export interface LocalUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** Looks an account up by name; resolves null when it does not exist. `name` is validated first. */
export function lookupUser(name: string, timeoutMs = 5000): Promise<LocalUser | null> {
  // POSIX portable user names plus what useradd allows; never an option or a path.
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/.test(name)) return Promise.resolve(null);
  return new Promise((resolve) => {
    execFile("getent", ["passwd", name], { timeout: timeoutMs }, (err, stdout) => {
      if (err) return resolve(null);
      const line = stdout.split("\n")[0] ?? "";
      const f = line.split(":");
      if (f.length < 7 || f[0] !== name) return resolve(null);
      const uid = Number(f[2]);
      const gid = Number(f[3]);
      if (!Number.isInteger(uid) || !Number.isInteger(gid)) return resolve(null);
      resolve({ name, uid, gid, home: f[5] || "/", shell: f[6] || "/bin/sh" });
    });
  });
}
