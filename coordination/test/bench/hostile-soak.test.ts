/**
 * Soak (issue 6 acceptance 2, listener part): 30 s of unknown upgrades, stalled HTTP/2
 * control streams and slowloris connections against a real `lattice-control`, while a
 * legitimate node registers and its map stream keeps working. Prints the server's open
 * fds and RSS before, during and after. Figures, plus the checks that the load was
 * refused and the resources came back (fds to baseline).
 *
 *   npx vitest run --project bench coordination/test/bench/hostile-soak.test.ts
 *   LATTICE_SOAK_SECONDS=60 … for a longer run
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServer, TestNode, waitFor, type ServerProc } from "../harness.js";
import { adminJson, procStats } from "../hostile/clients.js";
import { sampleProc, startHostileLoad } from "../hostile/load.js";

const SECONDS = Number(process.env.LATTICE_SOAK_SECONDS ?? 30);

let s: ServerProc;
beforeAll(async () => {
  s = await startServer({
    env: {
      LATTICE_CONTROL_HEADER_TIMEOUT: "2s",
      LATTICE_CONTROL_REQUEST_TIMEOUT: "5s",
      LATTICE_CONTROL_BODY_TIMEOUT: "2s",
      LATTICE_CONTROL_CONTROL_IDLE_TIMEOUT: "4s",
    },
  });
  expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
}, 30_000);
afterAll(async () => {
  await s?.stop();
});

it(`hostile listener load for ${SECONDS} s: a legitimate node keeps working, fds and RSS come back`, async () => {
  const pid = s.proc.pid!;
  const key = (await s.cli(["keys", "create", "--user", "alice", "--preapproved"])).stdout.trim();
  const before = await procStats(pid);
  const sampler = sampleProc(pid, 5000);
  const load = startHostileLoad(s.url);
  const node = await new TestNode(s.url, "legit").connect();
  const reg = await node.register({ Auth: { AuthKey: key } });
  expect(reg.MachineAuthorized).toBe(true);
  const stream = node.map()[Symbol.asyncIterator]();
  expect((await stream.next()).value.Node.Name).toBe("legit.lattice.internal.");
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const during = await procStats(pid);
  // The legitimate node's channel survived (its map stream is an active request).
  expect(node.client.closed).toBe(false);
  const again = await new TestNode(s.url, "legit-2").connect();
  expect((await again.register({})).AuthURL).toContain("/register/");
  again.close();
  await load.stop();
  sampler.stop();
  await stream.return!();
  node.close();
  await waitFor(async () => (await procStats(pid)).fds <= before.fds + 2, 20_000).catch(() => {});
  const after = await procStats(pid);
  const m = (await adminJson(s.socket, "/metrics")).json;
  console.log(`hostile soak, ${SECONDS} s, ${load.waves} waves (each: 50 unknown upgrades, 10 slowloris, 4 channels x 16 stalled streams); client errors ${load.errors}`);
  console.log(`server fds / RSS: before ${before.fds} / ${(before.rssKiB / 1024).toFixed(1)} MiB, at ${SECONDS} s ${during.fds} / ${(during.rssKiB / 1024).toFixed(1)} MiB, after ${after.fds} / ${(after.rssKiB / 1024).toFixed(1)} MiB`);
  console.log(`samples (t ms: fds, RSS MiB): ${sampler.samples.map((x) => `${x.t}: ${x.fds}, ${(x.rssKiB / 1024).toFixed(1)}`).join("; ")}`);
  console.log(`metrics: ${JSON.stringify(m)}`);
  expect(after.fds).toBeLessThanOrEqual(before.fds + 2);
  expect(m.listeners.http.upgradesRefused).toBeGreaterThanOrEqual(50 * (load.waves - 1));
  expect(m.control.stalledStreams + m.control.idleChannelsClosed).toBeGreaterThan(0);
}, (SECONDS + 90) * 1000);
