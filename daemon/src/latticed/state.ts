/**
 * The daemon's state directory (default /var/lib/lattice): private keys, prefs and the
 * last netmap, each one file written atomically (temp file 0600 in the same directory,
 * write, fsync, rename over the old one, fsync the directory) so a crash leaves either
 * the old or the new content, never a torn file.
 *
 * Files: `machine.key` (long-lived Noise key), `node.key` (WireGuard key, replaced on
 * re-auth), `disco.key`, `prefs.json`, `netmap.json`. Keys are stored as
 * `privkey:<64 hex>\n` (Tailscale's private key text form).
 *
 * Permissions, as OpenSSH treats ~/.ssh: the directory must be owned by the daemon's
 * user and have no group/other bits (created 0700); a state file with group/other bits
 * is refused with `state_insecure` naming the path and the mode (never silently used:
 * it may have been read by someone else already). Everything is synchronous: state is
 * tiny and read/written rarely (start, login, netmap change at most every few seconds).
 */
import fs from "node:fs";
import path from "node:path";
import { LatticedError } from "./errors.js";

/** File names inside the state directory. */
export const STATE_FILES = {
  machineKey: "machine.key",
  nodeKey: "node.key",
  discoKey: "disco.key",
  prefs: "prefs.json",
  netmap: "netmap.json",
} as const;

const KEY_RE = /^privkey:([0-9a-f]{64})\s*$/;

function octal(mode: number): string {
  return "0" + (mode & 0o777).toString(8);
}

/** The state directory. Create with {@link StateDir.open}. */
export class StateDir {
  private constructor(
    /** Absolute path of the directory. */
    readonly dir: string,
    private readonly random: (n: number) => Uint8Array,
  ) {}

  /**
   * Creates `dir` (mode 0700, parents as needed) or checks the existing one: a directory,
   * owned by this process's user, no group/other permission bits. Throws LatticedError
   * `state_insecure` (naming path, mode, owner) otherwise.
   */
  static open(dir: string, random: (n: number) => Uint8Array): StateDir {
    const abs = path.resolve(dir);
    fs.mkdirSync(abs, { recursive: true, mode: 0o700 });
    const st = fs.statSync(abs);
    if (!st.isDirectory()) throw new LatticedError("state_insecure", `state directory ${abs} is not a directory`);
    const uid = process.getuid?.() ?? st.uid;
    if (st.uid !== uid) throw new LatticedError("state_insecure", `state directory ${abs} is owned by uid ${st.uid}, not by this daemon's uid ${uid}`);
    if ((st.mode & 0o077) !== 0) {
      throw new LatticedError("state_insecure", `state directory ${abs} has mode ${octal(st.mode)}: it holds private keys and must not be accessible by group or others (chmod 700 ${abs})`);
    }
    return new StateDir(abs, random);
  }

  /** Path of a state file. */
  path(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * The content of `name`, or null when it does not exist. Throws `state_insecure` when
   * the file has group/other permission bits or another owner.
   */
  read(name: string): Buffer | null {
    const p = this.path(name);
    let fd: number;
    try {
      fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    try {
      const st = fs.fstatSync(fd);
      if ((st.mode & 0o077) !== 0) {
        throw new LatticedError("state_insecure", `state file ${p} has mode ${octal(st.mode)}; it must be 0600 (readable by the daemon only): chmod 600 ${p}`);
      }
      const uid = process.getuid?.() ?? st.uid;
      if (st.uid !== uid) throw new LatticedError("state_insecure", `state file ${p} is owned by uid ${st.uid}, not by this daemon's uid ${uid}`);
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Writes `name` atomically with mode 0600 (see the file comment). */
  write(name: string, data: string | Uint8Array): void {
    const final = this.path(name);
    const hex = Buffer.from(this.random(6)).toString("hex");
    const tmp = path.join(this.dir, `.${name}.${process.pid}.${hex}.tmp`);
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    try {
      fs.renameSync(tmp, final);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    const dfd = fs.openSync(this.dir, fs.constants.O_RDONLY);
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }

  /** Removes `name` (no error when absent). */
  remove(name: string): void {
    fs.rmSync(this.path(name), { force: true });
  }

  /** Reads a JSON file; null when absent. Throws `state_corrupt` naming the file when it does not parse. */
  readJson<T>(name: string): T | null {
    const b = this.read(name);
    if (b === null) return null;
    try {
      return JSON.parse(b.toString("utf8")) as T;
    } catch (e) {
      throw new LatticedError("state_corrupt", `state file ${this.path(name)} is not valid JSON: ${(e as Error).message}`);
    }
  }

  /** Writes a JSON file atomically. */
  writeJson(name: string, value: unknown): void {
    this.write(name, JSON.stringify(value, null, 1) + "\n");
  }

  /** A 32-byte private key; null when absent. Throws `state_corrupt` when malformed. */
  readKey(name: string): Uint8Array | null {
    const b = this.read(name);
    if (b === null) return null;
    const m = KEY_RE.exec(b.toString("utf8"));
    if (!m) throw new LatticedError("state_corrupt", `state file ${this.path(name)} does not hold a key ("privkey:" + 64 hex digits)`);
    return new Uint8Array(Buffer.from(m[1]!, "hex"));
  }

  /** Writes a 32-byte private key. */
  writeKey(name: string, key: Uint8Array): void {
    if (key.length !== 32) throw new RangeError(`key must be 32 bytes, got ${key.length}`);
    this.write(name, `privkey:${Buffer.from(key).toString("hex")}\n`);
  }

  /** The key in `name`, created (random, written) when absent. */
  loadOrCreateKey(name: string): Uint8Array {
    const k = this.readKey(name);
    if (k) return k;
    const fresh = this.random(32);
    this.writeKey(name, fresh);
    return fresh;
  }
}
