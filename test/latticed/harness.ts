// Real processes for latticed system tests: lattice-control and latticed instances in
// network namespaces created here (names carry this run's id; everything started is
// killed by pid and every namespace deleted in cleanup()). Needs root, iproute2, ping and
// `pnpm exec tsc -b` (the programs run from dist/).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("this test needs root (network namespaces, TUN)");
}

/** Runs a command (argv, no shell); returns stdout; throws with stderr. */
export function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"], timeout: 30_000 });
  } catch (e) {
    const x = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")}: ${x.message}\n${x.stdout ?? ""}${x.stderr ?? ""}`);
  }
}

/** A LocalAPI call over the unix socket; resolves with status and parsed body. */
export function localApi(socket: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath: socket, method, path: p, headers: { Host: "local-tailscaled.sock", ...(data ? { "Content-Type": "application/json", "Content-Length": data.length } : {}) } }, (res) => {
      let s = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (s += c));
      res.on("end", () => {
        let parsed: unknown = s;
        try {
          parsed = JSON.parse(s);
        } catch {
          /* text */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on("error", reject);
    req.setTimeout(40_000, () => req.destroy(new Error("LocalAPI request timed out")));
    req.end(data);
  });
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(what: string, ms: number, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One test world: a LAN (bridge in the control namespace) and processes on it. */
export class World {
  readonly id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "latticed-test-"));
  readonly namespaces: string[] = [];
  readonly procs: ChildProcess[] = [];
  readonly logs = new Map<string, string>();
  #nodes = 0;

  /** `lanNet`: the first three octets of the LAN (default 10.77.0). */
  constructor(readonly lanNet = "10.77.0") {
    fs.chmodSync(this.dir, 0o700);
  }

  ns(role: string): string {
    return `ltd-${role}-${this.id}`;
  }

  /** The LAN: namespace "ctl" with bridge br0 at LAN.1/24 (10.77.0.1 by default). */
  lan(): void {
    const c = this.ns("ctl");
    run("ip", ["netns", "add", c]);
    this.namespaces.push(c);
    run("ip", ["-n", c, "link", "set", "lo", "up"]);
    run("ip", ["-n", c, "link", "add", "br0", "type", "bridge"]);
    run("ip", ["-n", c, "addr", "add", `${this.lanNet}.1/24`, "dev", "br0"]);
    run("ip", ["-n", c, "link", "set", "br0", "up"]);
  }

  /** A node namespace on the LAN at 10.77.0.(10+n)/24; returns its name and LAN address. */
  nodeNs(role: string): { ns: string; lanIp: string } {
    const n = ++this.#nodes;
    const ns = this.ns(role);
    const c = this.ns("ctl");
    run("ip", ["netns", "add", ns]);
    this.namespaces.push(ns);
    run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    run("ip", ["-n", c, "link", "add", `p${n}`, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    run("ip", ["-n", c, "link", "set", `p${n}`, "master", "br0"]);
    run("ip", ["-n", c, "link", "set", `p${n}`, "up"]);
    const lanIp = `${this.lanNet}.${10 + n}`;
    run("ip", ["-n", ns, "addr", "add", `${lanIp}/24`, "dev", "eth0"]);
    run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    return { ns, lanIp };
  }

  /** Starts a process in `ns` (logs to dir/name.log). */
  spawn(name: string, ns: string, args: string[]): ChildProcess {
    const log = path.join(this.dir, `${name}.log`);
    const fd = fs.openSync(log, "a", 0o600);
    const p = spawn("ip", ["netns", "exec", ns, ...args], { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    this.procs.push(p);
    this.logs.set(name, log);
    return p;
  }

  log(name: string): string {
    const f = this.logs.get(name);
    return f && fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
  }

  /** lattice-control on 10.77.0.1:8080 in the control namespace; resolves once it answers /key. */
  async control(name = "control"): Promise<{ url: string; admin: (...a: string[]) => string; proc: ChildProcess }> {
    const sock = path.join(this.dir, "ctl", "control.sock");
    const url = `http://${this.lanNet}.1:8080`;
    const proc = this.spawn(name, this.ns("ctl"), [process.execPath, path.join(REPO, "coordination/dist/main.js"), "serve", "--listen", `${this.lanNet}.1:8080`, "--server-url", url, "--db", path.join(this.dir, "control.db"), "--socket", sock]);
    await waitFor("lattice-control", 20_000, () => fs.existsSync(sock) && this.log(name).includes("admin socket"));
    const admin = (...a: string[]) => run(process.execPath, [path.join(REPO, "coordination/dist/main.js"), "--socket", sock, ...a]).trim();
    return { url, admin, proc };
  }

  /** Sends `sig` to `p` and waits for it to exit. */
  static async stop(p: ChildProcess, sig: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill(sig);
    await gone;
  }

  /**
   * A latticed in `ns`; returns its socket path and its resolv.conf: a file of this world
   * (`dir/NAME-resolv.conf`, absent unless the test writes it), never the host's
   * /etc/resolv.conf (`--accept-dns` is on by default).
   */
  latticed(name: string, ns: string, extra: string[] = []): { socket: string; proc: ChildProcess; resolvConf: string } {
    const socket = path.join(this.dir, `${name}.sock`);
    const resolvConf = path.join(this.dir, `${name}-resolv.conf`);
    const proc = this.spawn(name, ns, [process.execPath, path.join(REPO, "daemon/bin/latticed.js"), "--state", path.join(this.dir, `${name}-state`), "--socket", socket, "--verbose", "1", "--resolv-conf", resolvConf, ...extra]);
    return { socket, proc, resolvConf };
  }

  /** Kills every process started (by pid), deletes the namespaces and the directory. */
  async cleanup(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((r) => {
            if (p.exitCode !== null || p.signalCode !== null) return r();
            const t = setTimeout(() => {
              p.kill("SIGKILL");
              r();
            }, 5_000);
            p.once("exit", () => {
              clearTimeout(t);
              r();
            });
          }),
      ),
    );
    for (const ns of this.namespaces.reverse()) {
      try {
        run("ip", ["netns", "del", ns]);
      } catch {
        /* already gone */
      }
    }
    if (!process.env["LATTICED_KEEP_LOGS"]) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
