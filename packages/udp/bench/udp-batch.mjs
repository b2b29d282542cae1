#!/usr/bin/env node
// Datagrams/s over loopback in ONE process (sender and receiver share the event loop):
// node:dgram vs @lattice/udp (sendmmsg/recvmmsg, then + UDP GSO/GRO). 1420-byte payloads.
// Closed loop: send a burst whenever at most one burst is in flight (sent - received),
// else yield with setImmediate so receive callbacks run; repeat for DURATION ms. The
// figure is datagrams RECEIVED per second; CPU is the process's user+system time per
// received datagram (steadier than wall time on a shared machine).
// Needs the addon and dist/: `pnpm --filter @lattice/udp run build:native && npx tsc -b packages/udp`.
// Usage: node packages/udp/bench/udp-batch.mjs [durationMs=1500] [rounds=3] [burst=64]
import dgram from "node:dgram";
import { once } from "node:events";
import { openUdp } from "../dist/index.js";

const DURATION = Number(process.argv[2] ?? 1500);
const ROUNDS = Number(process.argv[3] ?? 3);
const BURST = Number(process.argv[4] ?? 64);
const SIZE = 1420;
const tick = () => new Promise((r) => setImmediate(r));

async function benchDgram() {
  const rx = dgram.createSocket({ type: "udp4", recvBufferSize: 7 << 20 });
  const tx = dgram.createSocket({ type: "udp4", sendBufferSize: 7 << 20 });
  let received = 0;
  let bytes = 0;
  rx.on("message", (msg) => {
    received++;
    bytes += msg.length;
  });
  rx.bind(0, "127.0.0.1");
  await once(rx, "listening");
  const port = rx.address().port;
  const payloads = Array.from({ length: BURST }, (_, i) => Buffer.alloc(SIZE, i));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  while (performance.now() - t0 < DURATION) {
    if (sent - received <= BURST) {
      for (let i = 0; i < BURST; i++) tx.send(payloads[i], port, "127.0.0.1");
      sent += BURST;
    }
    await tick();
  }
  await new Promise((r) => setTimeout(r, 50)); // drain
  const secs = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpuUs = (c.user + c.system) / Math.max(1, received);
  rx.close();
  tx.close();
  return { rate: received / (secs - 0.05), sent, received, syscallsPerDatagram: 2, cpuUs };
}

async function benchAddon(gso, gro, perDatagram = false) {
  let received = 0;
  let bytes = 0;
  const rx = openUdp({
    port: 0,
    gro,
    onBatch(b) {
      received += b.count;
      for (let i = 0; i < b.count; i++) bytes += b.length(i);
    },
    onError: (e) => console.error(e),
  });
  const tx = openUdp({ port: 0, gso, onBatch: () => {}, onError: (e) => console.error(e) });
  const to = { address: "127.0.0.1", port: rx.port, family: 4 };
  const payloads = Array.from({ length: BURST }, (_, i) => Buffer.alloc(SIZE, i));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  const datagrams = payloads.map((data) => ({ data, ...to }));
  while (performance.now() - t0 < DURATION) {
    if (sent - received <= BURST) sent += perDatagram ? tx.sendBatch(datagrams) : tx.sendTo(payloads, to);
    await tick();
  }
  await new Promise((r) => setTimeout(r, 50));
  const secs = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpuUs = (c.user + c.system) / Math.max(1, received);
  const s1 = tx.stats();
  const s2 = rx.stats();
  rx.close();
  tx.close();
  return { rate: received / (secs - 0.05), sent, received, syscallsPerDatagram: (s1.syscalls + s2.syscalls) / Math.max(1, received), cpuUs };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const variants = {
  "node:dgram": () => benchDgram(),
  "@lattice/udp sendmmsg/recvmmsg": () => benchAddon(false, false),
  "@lattice/udp + GSO": () => benchAddon(true, false),
  "@lattice/udp + GSO + GRO": () => benchAddon(true, true),
  "  same, sendBatch (per-datagram dst)": () => benchAddon(true, true, true),
};
const results = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of Object.entries(variants)) results[name].push(await fn());
}
console.log(`${SIZE}-byte datagrams, one process, loopback, burst ${BURST}, ${ROUNDS} x ${DURATION} ms (median; received/s)`);
console.log(`machine load average ${(await import("node:os")).loadavg().map((x) => x.toFixed(1)).join(" ")}`);
const base = median(results["node:dgram"].map((x) => x.rate));
for (const [name, rs] of Object.entries(results)) {
  const rate = median(rs.map((x) => x.rate));
  const sys = median(rs.map((x) => x.syscallsPerDatagram));
  const lost = rs.reduce((a, x) => a + x.sent - x.received, 0);
  const cpu = median(rs.map((x) => x.cpuUs));
  console.log(
    `${name.padEnd(36)} ${Math.round(rate).toLocaleString("en-US").padStart(11)} datagrams/s` +
      `  ${((rate * SIZE * 8) / 1e9).toFixed(2)} Gbit/s  ratio ${(rate / base).toFixed(2)}x` +
      `  CPU ${cpu.toFixed(2)} us/datagram  syscalls/datagram ${sys.toFixed(3)}  lost ${lost}`,
  );
}
