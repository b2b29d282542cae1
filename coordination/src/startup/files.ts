/**
 * Filesystem steps of startup, each bounded and each failing with one {@link StartupError}
 * that names the setting and the path: creating a directory chain (0700), creating a
 * secret-holding file (0600, never following a symlink) and refusing existing ones that
 * group or others can read or write (like OpenSSH's check of private key files).
 *
 * Node's own `mkdirSync(..., { recursive: true })` is not used: under /proc it retries
 * forever (mkdir of a missing child answers ENOENT while the parent exists).
 */
import { closeSync, constants, mkdirSync, openSync, statSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { describeSystemError, StartupError, type StartupErrorCode } from "../errors.js";

/** Which setting a path belongs to, for error messages: e.g. `{ code: "db_unavailable", setting: "--db", value: "/x/a.db" }`. */
export interface SettingRef {
  code: StartupErrorCode;
  setting: string;
  value: string;
}

function fail(ref: SettingRef, reason: string, code: StartupErrorCode = ref.code): StartupError {
  return new StartupError(code, ref.setting, ref.value, reason);
}

/**
 * Makes sure `dir` is a directory, creating each missing component with mode 0700
 * (at most one mkdir per path component: no retry loop).
 * @throws {StartupError} when a component is not a directory or cannot be created.
 */
export function ensureDirectory(dir: string, ref: SettingRef): void {
  const missing: string[] = [];
  let cur = resolve(dir);
  for (;;) {
    let st: Stats;
    try {
      st = statSync(cur);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const parent = dirname(cur);
      if (code === "ENOENT" && parent !== cur) {
        missing.push(cur);
        cur = parent;
        continue;
      }
      if (code === "ENOTDIR") throw fail(ref, `${cur}: a component of the path is not a directory`);
      throw fail(ref, `cannot access ${cur}: ${describeSystemError(e)}`);
    }
    if (!st.isDirectory()) throw fail(ref, `${cur} is not a directory`);
    break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      // Created meanwhile by someone else: fine if it is a directory.
      if ((e as NodeJS.ErrnoException).code === "EEXIST" && statSync(d, { throwIfNoEntry: false })?.isDirectory()) continue;
      throw fail(ref, `cannot create directory ${d}: ${describeSystemError(e)}`);
    }
  }
}

/**
 * Creates `file` empty with mode 0600 unless it exists (O_EXCL, O_NOFOLLOW: a dangling
 * symlink is not followed). Returns true when it created the file.
 * @throws {StartupError} when the file cannot be created.
 */
export function createPrivateFile(file: string, ref: SettingRef): boolean {
  try {
    closeSync(openSync(file, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW, 0o600));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw fail(ref, `cannot create ${file}: ${describeSystemError(e)}`);
  }
}

/**
 * Refuses an existing file (symlinks followed) that group or others may read or write
 * (mode & 0o077), unless `allowInsecure`. A missing file passes.
 * @throws {StartupError} code `insecure_permissions`, naming the file, its mode, `chmod 600`
 *   and `--allow-insecure-permissions`; or the setting's own code when it cannot be inspected.
 */
export function checkPrivateFile(file: string, ref: SettingRef, allowInsecure: boolean): void {
  let st: Stats | undefined;
  try {
    st = statSync(file, { throwIfNoEntry: false });
  } catch (e) {
    throw fail(ref, `cannot access ${file}: ${describeSystemError(e)}`);
  }
  if (!st) return;
  if (!st.isFile()) throw fail(ref, `${file} is not a regular file`);
  if (allowInsecure || (st.mode & 0o077) === 0) return;
  const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
  throw fail(
    ref,
    `${file} holds secrets but has mode ${mode} (group/others may access it); run \`chmod 600 ${file}\` or pass --allow-insecure-permissions`,
    "insecure_permissions",
  );
}
