#!/usr/bin/env node
/**
 * lattice-derp figures (not a test): packets/s relayed between two clients on one relay,
 * then relay memory with N idle logged-in clients. Usage (after `pnpm exec tsc -b`):
 *   node derp/bench/relay.mjs [--seconds 5] [--size 1200] [--idle 10000]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connectDerp } from "../../packages/derp/dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const seconds = arg("seconds", 5);
const size = arg("size", 1200);
const idle = arg("idle", 10000);
const random = (n) => Uint8Array.from(randomBytes(n));
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const proc = spawn(process.execPath, [resolve(here, "../dist/main.js"), "--listen", "127.0.0.1:0", "--http-port", "-1", "--stun-port", "-1", "--max-connections", String(idle + 100)], { stdio: ["ignore", "ignore", "pipe"] });
const port = await new Promise((res, rej) => {
  let buf = "";
  proc.stderr.on("data", (d) => {
    buf += d;
    const m = /"derpPort":(\d+)/.exec(buf);
    if (m) res(Number(m[1]));
  });
  proc.once("exit", (c) => rej(new Error(`lattice-derp exited ${c}: ${buf}`)));
});
const url = `http://127.0.0.1:${port}`;
try {
  const a = await connectDerp(url, { privateKey: random(32), random, maxWriteBuffer: 4 << 20 });
  const b = await connectDerp(url, { privateKey: random(32), random });
  let got = 0;
  b.onMessage((m) => {
    if (m.kind === "packet") got++;
  });
  const pkt = new Uint8Array(size);
  let sent = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = performance.now();
  while (Date.now() < end) {
    for (let i = 0; i < 64; i++) if (a.send(b.client.publicKey, pkt)) sent++;
    await new Promise((r) => setImmediate(r));
  }
  await sleep(500);
  const dt = (performance.now() - t0 - 500) / 1000;
  console.log(`relay ${size}-byte packets, one sender → one receiver, ${seconds} s on loopback:`);
  console.log(`  delivered ${got} of ${sent} sent (${a.dropped} further attempts refused while the sender's socket was backed up)`);
  console.log(`  ${Math.round(got / dt)} packets/s, ${((got * size * 8) / dt / 1e6).toFixed(0)} Mbit/s of payload`);
  const st = (await (await fetch(`${url}/debug/stats`)).json()).derp;
  console.log(`  relay: ${st.packetsRecv} received, ${st.packetsQueued} queued, ${st.dropQueueHead} dropped (receiver's queue full)`);
  a.close();
  b.close();

  await sleep(300);
  const base = rssKiB(proc.pid);
  const conns = [];
  const t1 = performance.now();
  for (let i = 0; i < idle; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, idle - i) }, () => connectDerp(url, { privateKey: random(32), random, timeoutMs: 60_000 })));
    conns.push(...batch);
  }
  const loginS = (performance.now() - t1) / 1000;
  await sleep(1000);
  const full = rssKiB(proc.pid);
  console.log(`${conns.length} idle logged-in clients (logins took ${loginS.toFixed(1)} s, ${Math.round(conns.length / loginS)}/s):`);
  console.log(`  relay RSS ${(base / 1024).toFixed(0)} MiB → ${(full / 1024).toFixed(0)} MiB, ${((full - base) / conns.length).toFixed(1)} KiB per client`);
  for (const c of conns) c.close();
} finally {
  proc.kill("SIGTERM");
}
