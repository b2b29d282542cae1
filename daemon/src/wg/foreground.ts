/**
 * lattice-wg in the foreground: create the TUN interface, the WireGuard device and its
 * edge, the UAPI socket; report readiness; run until SIGTERM/SIGINT, interface
 * deletion or socket removal; then clean up (socket file removed, TUN closed).
 */
import { TunDevice } from "@lattice/tun";
import { UdpBind } from "@lattice/udp";
import type { ReadinessNotifier } from "./daemonize.js";
import { WgEdge, type EdgeDevice } from "./edge.js";
import type { Logger } from "./log.js";
import { UapiServer, uapiSocketPath, UAPI_SOCKET_DIR } from "./uapi-server.js";

/** wireguard-go's default MTU. */
export const DEFAULT_MTU = 1420;

/** Options of {@link runForeground}. */
export interface ForegroundOptions {
  readonly ifname: string;
  readonly log: Logger;
  readonly notify: ReadinessNotifier;
  /** Creates the sans-IO device; `now` is the monotonic clock (ms) the edge will use. */
  readonly createDevice: (opts: { now: () => number; mtu: number }) => EdgeDevice;
  /** Socket directory (default /var/run/wireguard). */
  readonly socketDir?: string;
  /** MTU (default 1420). */
  readonly mtu?: number;
  /** Process hooks (injected in tests). */
  readonly onSignal?: (sig: "SIGTERM" | "SIGINT", fn: () => void) => void;
}

/** Runs the daemon; resolves with the exit code once it has shut down. */
export async function runForeground(o: ForegroundOptions): Promise<number> {
  const { log } = o;
  const mtu = o.mtu ?? DEFAULT_MTU;
  let tun: TunDevice;
  try {
    tun = TunDevice.open({ name: o.ifname, mtu });
  } catch (e) {
    const msg = `Failed to create TUN device: ${(e as Error).message}`;
    log.error(msg);
    o.notify.failed(msg);
    return 1;
  }
  const now = (): number => performance.now();
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));
  let uapi: UapiServer | null = null;
  let stopped = false;
  const shutdown = (why: string, code = 0): void => {
    if (stopped) return;
    stopped = true;
    log.info(`Shutting down (${why})`);
    uapi?.close();
    edge.close();
    finish(code);
  };
  let edge: WgEdge;
  try {
    const device = o.createDevice({ now, mtu });
    edge = new WgEdge({
      device,
      tun,
      now,
      log,
      createBind: () => new UdpBind(),
      onFatal: (e) => {
        const gone = (e as { code?: string }).code === "ERR_TUN_GONE";
        if (gone) log.info(`Interface ${tun.name} was deleted`);
        else log.error(`Device failed: ${e.message}`);
        shutdown(gone ? "interface deleted" : "device failure", gone ? 0 : 1);
      },
    });
    edge.start(0);
  } catch (e) {
    tun.close();
    const msg = `Failed to start device: ${(e as Error).message}`;
    log.error(msg);
    o.notify.failed(msg);
    return 1;
  }
  log.info("Device started");
  try {
    uapi = await UapiServer.listen(uapiSocketPath(tun.name, o.socketDir ?? UAPI_SOCKET_DIR), edge, log);
  } catch (e) {
    edge.close();
    const msg = `UAPI listen error: ${(e as Error).message}`;
    log.error(msg);
    o.notify.failed(msg);
    return 1;
  }
  uapi.watchRemoval(() => shutdown("UAPI socket removed"));
  log.info("UAPI listener started");
  const onSignal = o.onSignal ?? ((sig, fn) => void process.once(sig, fn));
  onSignal("SIGTERM", () => shutdown("SIGTERM"));
  onSignal("SIGINT", () => shutdown("SIGINT"));
  o.notify.ready();
  return done;
}
