// Per-packet cost of @lattice/filter: ns/packet for accept and drop paths, and heap bytes
// allocated per packet over 1M packets (a fixed ~100 KB of JIT/IC overhead shows as ~0.1;
// an allocating path shows ≥ 16). Figures, not assertions.
// Run after `pnpm exec tsc -b`: `pnpm bench:filter` (node --expose-gc).
import { getHeapStatistics } from "node:v8";
import { PerformanceObserver } from "node:perf_hooks";
import { Filter } from "../dist/index.js";

function v4(proto, src, dst, sport, dport, flags = 0x02) {
  const tlen = proto === 6 ? 20 : 8;
  const b = new Uint8Array(20 + tlen + 32);
  b[0] = 0x45; b[2] = b.length >> 8; b[3] = b.length & 0xff; b[8] = 64; b[9] = proto;
  b.set(src.split(".").map(Number), 12); b.set(dst.split(".").map(Number), 16);
  b[20] = sport >> 8; b[21] = sport & 0xff; b[22] = dport >> 8; b[23] = dport & 0xff;
  if (proto === 6) { b[32] = 0x50; b[33] = flags; }
  if (proto === 1) { b[20] = flags; b[21] = 0; }
  return b;
}
function v6(proto, srcLast, dstLast, sport, dport, flags = 0x02) {
  const tlen = proto === 6 ? 20 : 8;
  const b = new Uint8Array(40 + tlen + 32);
  b[0] = 0x60; b[4] = 0; b[5] = tlen + 32; b[6] = proto; b[7] = 64;
  b.set([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0], 8); b[23] = srcLast;
  b.set([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0], 24); b[39] = dstLast;
  b[40] = sport >> 8; b[41] = sport & 0xff; b[42] = dport >> 8; b[43] = dport & 0xff;
  if (proto === 6) { b[52] = 0x50; b[53] = flags; }
  return b;
}

// A tailnet-sized rule set: 200 rules, each from 20 peers to this node's ports.
const rules = [];
for (let r = 0; r < 200; r++) {
  const srcs = [];
  for (let i = 0; i < 20; i++) srcs.push(`100.64.${r}.${i + 1}`, `fd7a:115c:a1e0::${(r << 8) | (i + 1)}`.replace(/::(\w+)$/, (_, h) => `::${Number(h).toString(16)}`));
  rules.push({ SrcIPs: srcs, DstPorts: [{ IP: "*", Ports: { First: 1000 + r, Last: 1000 + r } }] });
}
rules.push({ SrcIPs: ["100.64.7.7"], DstPorts: [{ IP: "100.64.0.1", Ports: { First: 22, Last: 22 } }] });
rules.push({ SrcIPs: ["100.64.0.0/10"], DstPorts: [{ IP: "100.64.0.1", Ports: { First: 80, Last: 80 } }] });
const filter = Filter.fromRules(rules, ["100.64.0.1", "fd7a:115c:a1e0::1"]);
filter.runOut(v4(17, "100.64.0.1", "100.64.9.9", 5000, 53), 0);

const cases = [
  ["accept tcp data (non-SYN)", () => v4(6, "100.64.9.9", "100.64.0.1", 443, 5555, 0x10), true],
  ["accept tcp SYN, last rule (v4)", () => v4(6, "100.64.7.7", "100.64.0.1", 40000, 22), true],
  ["accept tcp SYN, CIDR rule (v4)", () => v4(6, "100.64.3.3", "100.64.0.1", 40000, 80), true],
  ["accept udp reply to own flow", () => v4(17, "100.64.9.9", "100.64.0.1", 53, 5000), true],
  ["accept udp by rule (v6)", () => v6(17, 0x05, 0x01, 40000, 1000), false],
  ["accept icmp echo request", () => v4(1, "100.64.7.7", "100.64.0.1", 0, 0, 8), true],
  ["drop tcp SYN, no rule (v4)", () => v4(6, "100.64.9.9", "100.64.0.1", 40000, 23), false],
  ["drop udp, no rule (v6)", () => v6(17, 0x09, 0x01, 40000, 23), false],
  ["drop not-local", () => v4(6, "100.64.7.7", "100.64.0.2", 40000, 22), false],
  ["drop malformed", () => new Uint8Array(60).fill(0x4f), false],
];

let gcs = 0;
new PerformanceObserver((list) => { gcs += list.getEntries().length; }).observe({ entryTypes: ["gc"] });
const N = 2_000_000;
console.log(`filter: ${rules.length} rules, ${N} packets per case, node ${process.version}`);
console.log("case                               verdict              ns/packet   heap B/packet");
for (const [name, make] of cases) {
  const pkt = make();
  let v;
  for (let i = 0; i < 200_000; i++) v = filter.runIn(pkt, i); // warm up
  globalThis.gc?.();
  const before = getHeapStatistics().used_heap_size;
  const M = 1_000_000;
  for (let i = 0; i < M; i++) v = filter.runIn(pkt, i);
  const perPacket = (getHeapStatistics().used_heap_size - before) / M;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) v = filter.runIn(pkt, i);
  const ns = Number(process.hrtime.bigint() - t0) / N;
  const verdict = `${v.accept ? "accept" : "drop"}:${v.reason}`;
  console.log(`${name.padEnd(35)}${verdict.padEnd(21)}${ns.toFixed(1).padStart(9)}   ${perPacket.toFixed(2).padStart(13)}`);
}
console.log(`GCs observed during the run: ${gcs}${globalThis.gc ? "" : " (run with --expose-gc for heap figures)"}`);
