/**
 * Login records for interactive (PTY) sessions, as sshd writes them: a USER_PROCESS entry
 * in utmp (who, w) and wtmp (last) at login, DEAD_PROCESS at logout.
 *
 * Record layout: glibc `struct utmp` on 64-bit Linux (utmp(5), bits/utmp.h; 384 bytes,
 * 32-bit ut_session/ut_tv for compatibility): ut_type i16 @0, ut_pid i32 @4, ut_line[32] @8,
 * ut_id[4] @40, ut_user[32] @44, ut_host[256] @76, ut_exit @332, ut_session i32 @336,
 * ut_tv {sec i32, usec i32} @340, ut_addr_v6 i32[4] @348, unused[20] @364.
 *
 * Files are only written when they already exist (the system creates them at boot; a
 * container without them gets no records). utmp slots are matched by ut_id (the last four
 * characters of the line, as login/sshd do); glibc's advisory fcntl lock is not taken (Node
 * has no fcntl), so a simultaneous writer may, rarely, interleave — the records are
 * advisory. All errors are swallowed: a missing login record never fails a session.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { parseIp } from "@lattice/netaddr";

/** utmp record size on 64-bit Linux. */
export const UTMP_SIZE = 384;
const USER_PROCESS = 7;
const DEAD_PROCESS = 8;

/** Where the records go. */
export interface UtmpPaths {
  utmp: string;
  wtmp: string;
}

/** Default system paths. */
export const SYSTEM_UTMP: UtmpPaths = { utmp: "/var/run/utmp", wtmp: "/var/log/wtmp" };

/** One login. */
export interface LoginRecord {
  /** "/dev/pts/3" or "pts/3". */
  tty: string;
  pid: number;
  user: string;
  /** Remote host (the peer's address). */
  host: string;
}

function put(buf: Buffer, off: number, len: number, s: string): void {
  buf.fill(0, off, off + len);
  buf.write(s, off, Math.min(len, Buffer.byteLength(s)), "utf8");
}

/** Encodes one record. */
export function encodeUtmp(type: number, rec: LoginRecord, now: Date): Buffer {
  const b = Buffer.alloc(UTMP_SIZE);
  const line = rec.tty.replace(/^\/dev\//, "");
  b.writeInt16LE(type, 0);
  b.writeInt32LE(rec.pid, 4);
  put(b, 8, 32, line);
  put(b, 40, 4, line.slice(-4));
  if (type === USER_PROCESS) {
    put(b, 44, 32, rec.user);
    put(b, 76, 256, rec.host);
    const ip = parseIp(rec.host);
    if (ip) Buffer.from(ip.bytes).copy(b, 348);
  }
  b.writeInt32LE(0, 336);
  const ms = now.getTime();
  b.writeInt32LE(Math.floor(ms / 1000) | 0, 340);
  b.writeInt32LE((ms % 1000) * 1000, 344);
  return b;
}

function writeUtmpSlot(path: string, rec: Buffer): void {
  if (!existsSync(path)) return;
  const fd = openSync(path, "r+");
  try {
    const size = fstatSync(fd).size;
    const id = rec.subarray(40, 44);
    const cur = Buffer.alloc(UTMP_SIZE);
    let slot = -1;
    for (let off = 0; off + UTMP_SIZE <= size; off += UTMP_SIZE) {
      readSync(fd, cur, 0, UTMP_SIZE, off);
      const t = cur.readInt16LE(0);
      if ((t === USER_PROCESS || t === DEAD_PROCESS) && cur.subarray(40, 44).equals(id)) {
        slot = off;
        break;
      }
    }
    const at = slot >= 0 ? slot : size - (size % UTMP_SIZE);
    writeSync(fd, rec, 0, UTMP_SIZE, at);
  } finally {
    closeSync(fd);
  }
}

function appendWtmp(path: string, rec: Buffer): void {
  if (!existsSync(path)) return;
  const fd = openSync(path, "a");
  try {
    writeSync(fd, rec);
  } finally {
    closeSync(fd);
  }
}

/** Records a login; returns the logout function (idempotent). Never throws. */
export function recordLogin(paths: UtmpPaths, rec: LoginRecord, now: () => Date = () => new Date()): () => void {
  try {
    const r = encodeUtmp(USER_PROCESS, rec, now());
    writeUtmpSlot(paths.utmp, r);
    appendWtmp(paths.wtmp, r);
  } catch {
    // advisory records: never fail the session
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    try {
      const r = encodeUtmp(DEAD_PROCESS, rec, now());
      writeUtmpSlot(paths.utmp, r);
      appendWtmp(paths.wtmp, r);
    } catch {
      // ditto
    }
  };
}
