/**
 * Host network configuration of the TUN with iproute2 (`ip`, run as a child process with
 * an argv array, never a shell): the node's tailnet addresses (/32 and /128), link up,
 * and the two tailnet routes 100.64.0.0/10 and fd7a:115c:a1e0::/48 on the TUN. Nothing
 * else on the host is touched. Addresses and routes live on the TUN only, so the kernel
 * removes them with the interface when the daemon closes it.
 *
 * IPv6: when the host has IPv6 disabled (`ip -6` fails), the IPv6 address and route are
 * skipped with a warning; IPv4 keeps working.
 */
import { execFile } from "node:child_process";

/** The tailnet routes put on the TUN. */
export const TAILNET_ROUTES = ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] as const;

/** Runs `ip` with arguments; rejects with stderr in the message. */
export type IpRunner = (args: readonly string[]) => Promise<void>;

/** The default runner: `ip ARGS...` (PATH lookup, 5 s timeout). */
export const runIp: IpRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile("ip", [...args], { timeout: 5_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(" ")}: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });

/** Keeps a TUN's addresses and routes as the netmap says. */
export class TunConfig {
  #addrs: string[] = [];
  #routed = false;

  constructor(
    private readonly ifname: string,
    private readonly run: IpRunner,
    private readonly warn: (msg: string) => void,
  ) {}

  /** Brings the link up and adds the tailnet routes (once). */
  async up(): Promise<void> {
    await this.run(["link", "set", "dev", this.ifname, "up"]);
    if (this.#routed) return;
    this.#routed = true;
    for (const r of TAILNET_ROUTES) {
      const v6 = r.includes(":");
      try {
        await this.run([v6 ? "-6" : "-4", "route", "replace", r, "dev", this.ifname]);
      } catch (e) {
        if (!v6) throw e;
        this.warn(`IPv6 route ${r} not added (IPv6 disabled?): ${(e as Error).message}`);
      }
    }
  }

  /** Sets exactly `addrs` ("100.64.0.1/32", "fd7a:…/128") on the TUN: adds new ones, removes old ones. */
  async setAddresses(addrs: readonly string[]): Promise<void> {
    const next = [...addrs];
    for (const a of this.#addrs) {
      if (next.includes(a)) continue;
      await this.run([a.includes(":") ? "-6" : "-4", "addr", "del", a, "dev", this.ifname]).catch((e: Error) => this.warn(e.message));
    }
    for (const a of next) {
      if (this.#addrs.includes(a)) continue;
      const v6 = a.includes(":");
      try {
        // nodad: the address is ours alone (no duplicate detection delay on the TUN).
        await this.run(v6 ? ["-6", "addr", "replace", a, "dev", this.ifname, "nodad"] : ["-4", "addr", "replace", a, "dev", this.ifname]);
      } catch (e) {
        if (!v6) throw e;
        this.warn(`IPv6 address ${a} not set (IPv6 disabled?): ${(e as Error).message}`);
      }
    }
    this.#addrs = next;
  }

  /** The addresses last set. */
  get addresses(): readonly string[] {
    return this.#addrs;
  }
}
