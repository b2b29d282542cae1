/**
 * SSH host keys: ed25519, ecdsa-sha2-nistp256 and RSA-2048 (signed as rsa-sha2-512/256),
 * as Tailscale's ssh/tailssh/hostkeys.go: the host's own /etc/ssh/ssh_host_<type>_key
 * when readable (so `ssh` sees the same keys as with the host's sshd), else a key generated
 * once under `<stateDir>/ssh/` (mode 0600, written atomically) and reused afterwards —
 * stable across restarts and re-registration, since it never depends on the node key.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ssh2 from "ssh2";

const { utils } = ssh2;

/** Key types in the order they are offered. */
export const HOST_KEY_TYPES = ["ed25519", "ecdsa", "rsa"] as const;
/** One of HOST_KEY_TYPES. */
export type HostKeyType = (typeof HOST_KEY_TYPES)[number];

/** A loaded host key. */
export interface HostKey {
  type: HostKeyType;
  /** OpenSSH private key text (what ssh2's `hostKeys` accepts). */
  privateKey: string;
  /** authorized_keys line without comment: "ssh-ed25519 AAAA…". */
  publicKey: string;
  /** Where it came from. */
  path: string;
}

/** Host-key loading failed (unreadable state dir, unparseable generated key). */
export class HostKeyError extends Error {
  readonly code = "ssh-host-key";
  constructor(message: string) {
    super(message);
    this.name = "HostKeyError";
  }
}

/** Options for loadHostKeys. */
export interface HostKeyOptions {
  /** The daemon's state directory; keys live in `<stateDir>/ssh/`. */
  stateDir: string;
  /** Directory of the host's own keys (default /etc/ssh; tests pass an empty dir). */
  systemDir?: string;
}

function publicOf(privateKey: string): string | null {
  const k = utils.parseKey(privateKey);
  if (k instanceof Error) return null;
  const key = Array.isArray(k) ? k[0] : k;
  if (!key || !key.isPrivateKey()) return null;
  return `${key.type} ${key.getPublicSSH().toString("base64")}`;
}

function tryRead(path: string): { privateKey: string; publicKey: string } | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  const pub = publicOf(text);
  return pub ? { privateKey: text, publicKey: pub } : null;
}

/**
 * A new private key in OpenSSH format. ssh2's generateKeyPairSync("ed25519") writes a key
 * its own parser rejects ("Malformed OpenSSH private key") about 2 times in 1000, so each
 * key is parsed back and regenerated until it does (10 tries).
 */
export function generateHostKey(type: HostKeyType): string {
  for (let attempt = 0; attempt < 10; attempt++) {
    const pair =
      type === "ed25519"
        ? utils.generateKeyPairSync("ed25519")
        : type === "ecdsa"
          ? utils.generateKeyPairSync("ecdsa", { bits: 256 })
          : utils.generateKeyPairSync("rsa", { bits: 2048 });
    if (publicOf(pair.private) !== null) return pair.private;
  }
  throw new HostKeyError(`ssh2 generated 10 ${type} keys it cannot parse`);
}

/**
 * Loads (or creates once) the three host keys.
 * @throws HostKeyError when a key can be neither read nor created under `<stateDir>/ssh/`.
 */
export function loadHostKeys(opts: HostKeyOptions): HostKey[] {
  const sysDir = opts.systemDir ?? "/etc/ssh";
  const own = join(opts.stateDir, "ssh");
  const keys: HostKey[] = [];
  for (const type of HOST_KEY_TYPES) {
    const sysPath = join(sysDir, `ssh_host_${type}_key`);
    const sys = tryRead(sysPath);
    if (sys) {
      keys.push({ type, ...sys, path: sysPath });
      continue;
    }
    const path = join(own, `ssh_host_${type}_key`);
    let k = tryRead(path);
    if (!k) {
      try {
        mkdirSync(own, { recursive: true, mode: 0o700 });
        const priv = generateHostKey(type);
        const tmp = `${path}.tmp-${process.pid}`;
        writeFileSync(tmp, priv, { mode: 0o600 });
        renameSync(tmp, path);
      } catch (e) {
        throw new HostKeyError(`cannot create SSH host key ${path}: ${(e as Error).message}`);
      }
      k = tryRead(path);
      if (!k) throw new HostKeyError(`generated SSH host key ${path} does not parse`);
    }
    keys.push({ type, ...k, path });
  }
  return keys;
}

/** The public host keys in authorized_keys format, for Hostinfo.SSH_HostKeys (JSON `sshHostKeys`). */
export function publicHostKeys(keys: readonly HostKey[]): string[] {
  return keys.map((k) => k.publicKey);
}
