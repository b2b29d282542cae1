/**
 * Assertions with real tools over the tunnel: `ping`, `ncat`, `iperf3`, and the `lattice`
 * CLI's own output (`status` text columns, `ping` pong lines). Each returns what it saw so a
 * failing expectation shows the tool's output.
 */
import { sleep, until, type Lab, type LabProc } from "./lab.js";
import type { LatticeNode } from "./programs.js";

/** `ping -c COUNT -W 2 -i 0.2 IP` from a namespace; ok when every echo got its reply. */
export async function icmpPing(lab: Lab, ns: string, ip: string, count = 3): Promise<{ ok: boolean; out: string }> {
  const r = await lab.run(ns, ["ping", "-n", "-c", String(count), "-i", "0.2", "-W", "2", ip], { timeoutMs: 10_000 + count * 3000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { ok: r.code === 0 && m !== null && m[1] === m[2], out: r.stdout + r.stderr };
}

/** Asserts that `ping -c count` from ns to ip gets every reply (want true) or none (false); the message shows ping's output. */
export async function expectIcmp(lab: Lab, ns: string, ip: string, count: number, want: boolean): Promise<void> {
  const r = await icmpPing(lab, ns, ip, count);
  const none = /(\d+) packets transmitted, 0 received/.test(r.out) || !/packets transmitted/.test(r.out);
  if (want ? !r.ok : !none) throw new Error(`ping ${ip} from ${ns}: want ${want ? "every reply" : "no reply"}, got:\n${r.out}`);
}

/** Polls icmpPing (1 echo) until it succeeds; throws after ms with the last output. */
export function waitIcmp(lab: Lab, ns: string, ip: string, ms = 20_000): Promise<true> {
  return until(`ping ${ip} from ${ns}`, async () => (await icmpPing(lab, ns, ip, 1)).ok, ms, 200);
}

/** The `lattice status` line (text output) of the peer with this host name, or undefined. */
export async function statusLine(node: LatticeNode, peerHostName: string): Promise<string | undefined> {
  const out = await node.latticeOk(["status"]);
  return out.split("\n").find((l) => l.split(/\s+/).includes(peerHostName));
}

/** Waits until `lattice status` shows the peer as `direct` (returns the line). */
export function waitStatusDirect(node: LatticeNode, peer: string, ms = 30_000): Promise<string> {
  return until(`${node.name}: lattice status shows ${peer} direct`, async () => {
    const l = await statusLine(node, peer);
    return l !== undefined && /\bdirect \S+:\d+/.test(l) ? l : false;
  }, ms, 300);
}

/** Waits until `lattice status` shows the peer as relayed (`relay "code"`); returns the line. */
export function waitStatusRelay(node: LatticeNode, peer: string, ms = 30_000): Promise<string> {
  return until(`${node.name}: lattice status shows ${peer} via relay`, async () => {
    const l = await statusLine(node, peer);
    return l !== undefined && /\brelay "[^"]+"/.test(l) && !/\bdirect\b/.test(l) ? l : false;
  }, ms, 300);
}

/** One parsed pong line of `lattice ping`. */
export interface Pong {
  readonly via: string;
  readonly ms: number;
  readonly derp: string | null;
}

/** Parses `pong from NAME (IP) via DERP(code) in Nms` / `via IP:port in Nms` lines. */
export function parsePongs(out: string): Pong[] {
  const pongs: Pong[] = [];
  for (const m of out.matchAll(/^pong from \S+ \(\S+\) via (\S+) in ([\d.]+)(ms|µs|us|s)/gm)) {
    const n = Number(m[2]);
    const ms = m[3] === "s" ? n * 1000 : m[3] === "ms" ? n : n / 1000;
    const derp = /^DERP\((.+)\)$/.exec(m[1]!);
    pongs.push({ via: m[1]!, ms, derp: derp === null ? null : derp[1]! });
  }
  return pongs;
}

/** A TCP listener (`ncat -lk PORT`) in a namespace that records what it receives. */
export async function tcpListener(lab: Lab, ns: string, name: string, port: number, bind?: string): Promise<LabProc> {
  const p = lab.spawn(name, ns, ["ncat", "-lk", ...(bind === undefined ? [] : ["-s", bind]), "-p", String(port)]);
  await until(`${name} listening on ${port}`, async () => (await lab.run(ns, ["ss", "-H", "-tln", `sport = :${port}`])).stdout.includes(`:${port}`), 5000, 50);
  return p;
}

/**
 * Connects from `ns` to ip:port with ncat (connect timeout in ms) and sends `token`; true when
 * the listener's log shows the token (the connection got through), false otherwise.
 */
export async function tcpReaches(lab: Lab, ns: string, ip: string, port: number, listener: LabProc, token: string, connectTimeoutMs = 2000): Promise<boolean> {
  const r = await lab.run(ns, ["bash", "-c", `echo ${token} | ncat -w ${connectTimeoutMs}ms --send-only ${ip} ${port}`], { timeoutMs: connectTimeoutMs + 5000 });
  if (r.code !== 0) return false;
  return until(`${token} at the listener`, () => listener.log().includes(token), 1000, 50).then(() => true, () => false);
}

/**
 * Polls `probe` for at most `budgetMs` (from now) and returns the elapsed ms at which it
 * first returned `want`, or null when it never did. For "changes within 2 s" checks: the
 * budget is the assertion, not a measured duration.
 */
export async function withinBudget(budgetMs: number, want: boolean, probe: () => Promise<boolean>): Promise<number | null> {
  const start = Date.now();
  for (;;) {
    if ((await probe()) === want) return Date.now() - start;
    if (Date.now() - start > budgetMs) return null;
    await sleep(50);
  }
}

/**
 * One iperf3 TCP run through the tunnel: server in `serverNs` bound to `serverIp` (one-off),
 * client in `clientNs` for `seconds`. Returns the receiver's Mbit/s (throws when iperf3 fails).
 */
export async function iperfTcp(lab: Lab, serverNs: string, serverIp: string, clientNs: string, seconds = 3, port = 5201): Promise<number> {
  const server = lab.spawn(`iperf3-server-${port}-${Date.now()}`, serverNs, ["iperf3", "-s", "-1", "-B", serverIp, "-p", String(port)]);
  try {
    await until("iperf3 server listening", async () => (await lab.run(serverNs, ["ss", "-H", "-tln", `sport = :${port}`])).stdout.includes(`:${port}`), 5000, 50);
    const r = await lab.run(clientNs, ["iperf3", "-c", serverIp, "-p", String(port), "-t", String(seconds), "-J"], { timeoutMs: (seconds + 30) * 1000 });
    if (r.code !== 0) throw new Error(`iperf3 client failed (${r.code}): ${r.stdout.slice(-2000)}${r.stderr}\nserver: ${server.log()}`);
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await server.stop();
  }
}
