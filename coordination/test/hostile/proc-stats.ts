/** Resource figures of a process from /proc (Linux): open file descriptors and resident memory. */
import { readdir, readFile } from "node:fs/promises";

/** Open fds and RSS (KiB) of process `pid`. */
export async function procStats(pid: number): Promise<{ fds: number; rssKiB: number }> {
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return { fds, rssKiB: m ? Number(m[1]) : 0 };
}
