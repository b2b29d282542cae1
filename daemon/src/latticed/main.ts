/**
 * latticed: the Lattice node daemon. Wires the state directory, the TUN, the WireGuard
 * device (lattice-wg's edge), magicsock (UDP + DERP + disco), the engine, the local backend
 * (control loop) and the LocalAPI; runs until SIGTERM/SIGINT, then shuts down in order:
 * an ephemeral node logs out (≤3 s), the LocalAPI closes, the control loop stops, the
 * TUN is closed (the kernel removes it with its addresses and routes).
 *
 * Exit codes: 0 after a signal, 1 on a setup failure (message on stderr and in the log),
 * 2 on bad flags.
 */
import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import os from "node:os";
import { Device } from "@lattice/wireguard";
import { TunDevice, loadNative } from "@lattice/tun";
import { parseLatticedArgs, LATTICED_VERSION, type LatticedOptions } from "./args.js";
import { LocalBackend } from "./backend.js";
import { dialControl } from "./control-loop.js";
import { Engine, LATTICED_MTU } from "./engine.js";
import { LatticedError } from "./errors.js";
import { LocalApiServer, peerUidFrom } from "./localapi.js";
import { createLogger, wgLogger } from "./log.js";
import type { MagicConn } from "./magic.js";
import { MagicSock } from "@lattice/magicsock";
import { DgramUpstream, readUpstreams } from "./magicdns.js";
import { renderMetrics } from "./metrics.js";
import { SshService } from "./ssh.js";
import { createHostDns, execRunner } from "./hostdns.js";
import { STATE_FILES, StateDir } from "./state.js";
import type { Logger } from "pino";
import { TunConfig, runIp } from "./tun-config.js";
import { RULE_CHECK_MS, Router, readCmd, runCmd } from "./router.js";
import { BYPASS_MARK } from "./router-plan.js";
import { RouteManager, hostLanPrefixes } from "./route-manager.js";

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** The Bind + path manager under the device: @lattice/magicsock (UDP + DERP + disco). */
function createMagic(o: { now: () => number; random: (n: number) => Uint8Array; log: Logger; discoPrivate: Uint8Array; onEndpoints: (e: string[]) => void; onHomeDerp: (r: number) => void }): MagicConn {
  return new MagicSock(o);
}

/** The uid of `--operator USER` (a number, or looked up with `id -u`, so NSS users work). */
export function operatorUid(user: string | null): number | null {
  if (user === null) return null;
  if (/^\d+$/.test(user)) return Number(user);
  try {
    return Number(execFileSync("id", ["-u", "--", user], { encoding: "utf8", timeout: 5_000 }).trim());
  } catch {
    throw new LatticedError("bad_args", `--operator: no such user ${JSON.stringify(user)}`);
  }
}

/** Runs the daemon; resolves with the exit code. */
export async function runLatticed(o: LatticedOptions): Promise<number> {
  const log = createLogger(o.verbose);
  const now = (): number => performance.now();
  let state: StateDir;
  let opUid: number | null;
  let discoPrivate: Uint8Array;
  try {
    opUid = operatorUid(o.operator);
    state = StateDir.open(o.state, random);
    discoPrivate = state.loadOrCreateKey(STATE_FILES.discoKey);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "startup failed");
    process.stderr.write(`latticed: ${(e as Error).message}\n`);
    return 1;
  }
  let tun: TunDevice;
  try {
    tun = TunDevice.open({ name: o.tun, mtu: LATTICED_MTU });
  } catch (e) {
    const msg = `creating TUN ${o.tun}: ${(e as Error).message}`;
    log.fatal({ err: msg }, "startup failed");
    process.stderr.write(`latticed: ${msg}\n`);
    return 1;
  }
  let backend: LocalBackend | null = null;
  const magic = createMagic({
    now,
    random,
    log,
    discoPrivate,
    onEndpoints: () => backend?.endpointsChanged(),
    onHomeDerp: () => backend?.endpointsChanged(),
  });
  // Peers keep their magic endpoint: magicsock picks the path (Tailscale disables roaming too).
  const device = new Device({ now, random, mtu: LATTICED_MTU, roaming: false });
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((r) => (finish = r));
  let stopping = false;
  // --accept-dns: mode detected from resolv.conf (hostdns.ts); a direct-mode backup left by
  // a crash is restored first, so upstreams are the host's own.
  const { dns: hostDns, originalPath } = createHostDns(o.resolvConf, tun.name, execRunner, (m) => log.warn({}, `accept-dns: ${m}`));
  const upstreams = readUpstreams(originalPath);
  log.info({ upstreams, mode: hostDns.mode, file: o.resolvConf }, "MagicDNS forwards to the host's resolv.conf nameservers");
  const engine = new Engine({
    dnsUpstream: upstreams.length > 0 ? new DgramUpstream(upstreams) : null,
    tun,
    device,
    magic,
    tunConfig: new TunConfig(tun.name, runIp, (m) => log.warn({}, m)),
    now,
    random,
    log: wgLogger(log),
    onFatal: (e) => {
      log.error({ err: e.message }, "data path failed");
      void shutdown("data path failure", 1);
    },
  });
  // Subnet routes / exit nodes: policy routing (table 52) and forwarding chains; a crashed
  // predecessor's state is removed first (router-plan.ts cleanupCmds).
  const router = new Router({ ifname: tun.name, run: runCmd, read: readCmd, warn: (m) => log.warn({}, m), debug: (m) => log.debug({}, m) });
  await router.cleanup();
  // Rules deleted by someone else come back within RULE_CHECK_MS.
  const ruleCheck = setInterval(() => {
    void router.repairRules().then((r) => {
      if (r.length > 0) log.warn({ rules: r }, "policy rules deleted by someone else were re-added");
    });
  }, RULE_CHECK_MS);
  ruleCheck.unref();
  const routes = new RouteManager({ router, lanPrefixes: () => hostLanPrefixes(tun.name) });
  try {
    await engine.start(o.port);
    // latticed's own UDP bypasses table 52 (rule 5210); without CAP_NET_ADMIN it cannot be marked.
    try {
      engine.setFwmark(Number(BYPASS_MARK));
    } catch (e) {
      log.warn({ err: (e as Error).message }, "cannot mark latticed's UDP socket (SO_MARK): an exit node would capture it");
    }
  } catch (e) {
    clearInterval(ruleCheck);
    engine.close();
    const msg = `starting the data path: ${(e as Error).message}`;
    log.fatal({ err: msg }, "startup failed");
    process.stderr.write(`latticed: ${msg}\n`);
    return 1;
  }
  // The embedded SSH server (RunSSH): internal port P below the kernel's ephemeral range.
  const ssh = new SshService({
    stateDir: state.dir,
    netmap: () => backend?.netmap ?? null,
    get: (path, signal) => (backend ? backend.controlGet(path, signal) : Promise.reject(new LatticedError("no_netmap", "starting"))),
    divert: engine.divert,
    log,
    randomPort: () => randomInt(10_000, 32_768),
  });
  backend = new LocalBackend({
    ssh: { apply: (on, addrs) => ssh.apply(on, addrs), hostKeys: () => ssh.hostKeys(), policyChanged: () => ssh.backend.changed(), close: () => ssh.close() },
    state,
    engine,
    magic,
    dial: dialControl,
    log,
    version: LATTICED_VERSION,
    now,
    wallNow: Date.now,
    random,
    rnd: () => randomInt(0, 1 << 30) / (1 << 30),
    hostname: () => os.hostname(),
    tun: true,
    hostDns,
    hostUpstreams: upstreams,
    routes,
  });
  let api: LocalApiServer | null = null;
  try {
    await backend.start();
    const native = loadNative();
    api = await LocalApiServer.listen({
      socketPath: o.socket,
      backend,
      version: LATTICED_VERSION,
      operatorUid: opUid,
      peerUid: peerUidFrom((fd) => native.peerCred(fd)),
      log,
      random,
      metrics: () => {
        const counters = engine.peerCounters();
        let rx = 0;
        let tx = 0;
        for (const c of counters.values()) (rx += c.rxBytes), (tx += c.txBytes);
        return renderMetrics({
          filter: engine.filterCounters(),
          edge: { ...engine.edgeStats },
          deviceDrops: { ...device.stats().drops },
          rxBytes: rx,
          txBytes: tx,
          peers: counters.size,
          magicsock: magic.stats(),
          dns: { ...engine.dnsStats, droppedQuad100Source: engine.droppedQuad100Source },
          localapi: api!.stats,
          ssh: { divert: { ...engine.divert.stats }, server: ssh.server ? { ...ssh.server.stats } : null },
        });
      },
    });
  } catch (e) {
    const msg = (e as Error).message;
    log.fatal({ err: msg }, "startup failed");
    process.stderr.write(`latticed: ${msg}\n`);
    await backend.shutdown(0).catch(() => {});
    clearInterval(ruleCheck);
    await router.set(null).catch(() => {});
    engine.close();
    return 1;
  }
  log.info({ socket: o.socket, state: state.dir, tun: tun.name, port: engine.port, backendState: backend.state }, "latticed running");

  async function shutdown(why: string, code: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info({ why }, "shutting down");
    try {
      await backend?.shutdown(3_000);
    } catch (e) {
      log.error({ err: (e as Error).message }, "backend shutdown");
    }
    await api?.close().catch(() => {});
    clearInterval(ruleCheck);
    await router.set(null).catch((e: Error) => log.error({ err: e.message }, "removing routes"));
    engine.close();
    finish(code);
  }
  process.once("SIGTERM", () => void shutdown("SIGTERM", 0));
  process.once("SIGINT", () => void shutdown("SIGINT", 0));
  return done;
}

/** Entry: parse, run, exit. */
export async function main(argv: readonly string[]): Promise<number> {
  const cmd = parseLatticedArgs(argv, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
  if (cmd.kind === "exit") return cmd.code;
  return runLatticed(cmd.opts);
}
