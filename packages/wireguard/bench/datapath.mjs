// Data-path throughput of the sans-IO Device (no sockets, one thread): seal side
// (sendPackets → takeDatagrams) and open side (receiveDatagrams → takePackets) with
// 1420-byte inner packets in batches of 64. Run after `tsc -b`: node packages/wireguard/bench/datapath.mjs
import { randomBytes } from "node:crypto";
import { Device } from "../dist/index.js";
import { x25519PublicKey, clampScalar } from "@lattice/crypto";

let t = 0;
const rnd = (n) => new Uint8Array(randomBytes(n));
const mk = () => new Device({ now: () => t, random: rnd });
const a = mk(), b = mk();
const ak = clampScalar(rnd(32)), bk = clampScalar(rnd(32));
const epA = { address: "10.0.0.1", port: 1, family: 4 }, epB = { address: "10.0.0.2", port: 2, family: 4 };
a.applyConfig({ privateKey: ak, replacePeers: false, peers: [{ publicKey: x25519PublicKey(bk), remove: false, updateOnly: false, replaceAllowedIps: false, endpoint: epB, allowedIps: [{ address: "10.1.0.2", family: 4, bits: 32 }] }] });
b.applyConfig({ privateKey: bk, replacePeers: false, peers: [{ publicKey: x25519PublicKey(ak), remove: false, updateOnly: false, replaceAllowedIps: false, endpoint: epA, allowedIps: [{ address: "10.1.0.1", family: 4, bits: 32 }] }] });

function pkt() {
  const p = new Uint8Array(1420).fill(7);
  p[0] = 0x45; p[2] = 1420 >> 8; p[3] = 1420 & 255; p.set([10, 1, 0, 1], 12); p.set([10, 1, 0, 2], 16);
  return p;
}
// Handshake.
a.sendPacket(pkt());
for (let i = 0; i < 5; i++) {
  for (const d of a.takeDatagrams()) b.receiveDatagram(d.data, epA);
  for (const d of b.takeDatagrams()) a.receiveDatagram(d.data, epB);
}
b.takePackets();

const BATCH = 64, N = 200_000;
const batch = Array.from({ length: BATCH }, pkt);
let sealed = [];
let t0 = process.hrtime.bigint();
for (let i = 0; i < N / BATCH; i++) {
  a.sendPackets(batch);
  const out = a.takeDatagrams();
  if (i < 50) sealed.push(...out);
}
let dt = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`seal: ${(N / dt / 1000).toFixed(1)}k packets/s, ${(N * 1420 * 8 / dt / 1e9).toFixed(2)} Gbit/s inner`);

// Open: re-seal fresh datagrams each round (decryption is in place and replay-checked).
let total = 0, openTime = 0n;
for (let r = 0; r < N / BATCH; r++) {
  a.sendPackets(batch);
  const dg = a.takeDatagrams().map((d) => ({ data: d.data, from: epA }));
  const s = process.hrtime.bigint();
  b.receiveDatagrams(dg);
  total += b.takePackets().length;
  openTime += process.hrtime.bigint() - s;
}
dt = Number(openTime) / 1e9;
console.log(`open: ${(total / dt / 1000).toFixed(1)}k packets/s, ${(total * 1420 * 8 / dt / 1e9).toFixed(2)} Gbit/s inner (${total} delivered)`);
