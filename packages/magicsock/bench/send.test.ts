// Cost of MagicSock.send() on a trusted direct path vs a plain endpoint through the same
// bind (the bind discards): what magicsock adds per datagram. Figures, not assertions:
// `pnpm exec vitest run --project bench packages/magicsock/bench/send.test.ts`.
import { test } from "vitest";
import { Endpoint } from "@lattice/netaddr";
import { peerOf, SimDerp, SimNet, simNode, wg } from "../test/sim.js";

test("send() cost per datagram: magic endpoint (direct) vs plain endpoint", async () => {
  const net = new SimNet();
  net.latency = () => 0;
  const derp = new SimDerp();
  const a = simNode(net, derp, "ba", "10.0.0.1");
  const b = simNode(net, derp, "bb", "10.0.0.2");
  await new Promise((r) => setTimeout(r, 50));
  a.ms.setPeers([peerOf(b)]);
  b.ms.setPeers([peerOf(a)]);
  a.ms.send([wg(0)], [a.ms.peerEndpoint(b.pub)], 1);
  await new Promise((r) => setTimeout(r, 50));
  if (a.ms.peerPath(b.pub)!.curAddr === "") throw new Error("no direct path");
  a.bind.mute = true;
  const BATCH = 64;
  const data = Array.from({ length: BATCH }, (_, i) => wg(i));
  const run = (to: Endpoint): number => {
    const tos = Array.from({ length: BATCH }, () => to);
    for (let i = 0; i < 2000; i++) a.ms.send(data, tos, BATCH); // warm-up
    const n = 10_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) a.ms.send(data, tos, BATCH);
    return Number(process.hrtime.bigint() - t0) / (n * BATCH);
  };
  // Alternate the two (JIT state and machine load affect whichever runs first).
  const plainEp = Endpoint.parse(`10.0.0.2:${b.bind.port}`)!;
  const magicEp = a.ms.peerEndpoint(b.pub);
  let plain = Infinity;
  let magic = Infinity;
  for (let k = 0; k < 3; k++) {
    magic = Math.min(magic, run(magicEp));
    plain = Math.min(plain, run(plainEp));
  }
  if (a.ms.peerPath(b.pub)!.curAddr === "") throw new Error("path expired during the run: figures invalid");
  console.log(`magicsock send(), batches of ${BATCH}: plain endpoint ${plain.toFixed(1)} ns/datagram, magic endpoint (direct) ${magic.toFixed(1)} ns/datagram (+${(magic - plain).toFixed(1)} ns)`);
  a.ms.close();
  b.ms.close();
});
