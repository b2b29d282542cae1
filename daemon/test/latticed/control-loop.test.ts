import { describe, expect, it } from "vitest";
import { BACKOFF_MAX_MS, ControlLoop, backoffMs } from "../../src/latticed/control-loop.js";
import { FakeControl, refused } from "./fake-control.js";
import { ControlError } from "@lattice/control-client";
import type { MapResponse } from "@lattice/types";

const log = { debug() {}, info() {}, warn() {} };

function loop(fc: FakeControl, over: Partial<ConstructorParameters<typeof ControlLoop>[0]> = {}) {
  const got: Array<[MapResponse, boolean]> = [];
  const disc: Error[] = [];
  const sleeps: number[] = [];
  const l = new ControlLoop(
    {
      dial: fc.dial,
      rnd: () => 0.999,
      mapRequest: () => ({ Version: 100, NodeKey: `nodekey:${"1".repeat(64)}`, Endpoints: ["10.0.0.1:1"] }),
      onMap: (m, full) => got.push([m, full]),
      onDisconnected: (e) => disc.push(e),
      onRefused: () => "stop",
      log,
      // Sleeps are recorded and skipped (fake timers for the backoff, real for the idle watchdog).
      setTimeout: (fn, ms) => {
        if (ms < 100_000) {
          sleeps.push(ms);
          return setTimeout(fn, 0);
        }
        return setTimeout(fn, ms);
      },
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
      ...over,
    },
    "http://control",
    new Uint8Array(32),
  );
  return { l, got, disc, sleeps };
}

describe("control loop", () => {
  it("backoff doubles from 1 s to at most 30 s, jittered into [0.5, 1)× (rounded to ms)", () => {
    expect(backoffMs(0, 0)).toBe(500);
    expect(backoffMs(0, 0.999)).toBeLessThanOrEqual(1_000);
    expect(backoffMs(3, 0.5)).toBe(6_000);
    for (let i = 5; i < 40; i++) expect(backoffMs(i, 0.9999)).toBeLessThanOrEqual(BACKOFF_MAX_MS);
  });

  it("streams with Stream+KeepAlive; the first message of each stream is full", async () => {
    const fc = new FakeControl();
    const { l, got } = loop(fc);
    l.start();
    await fc.until(() => fc.streams.length === 1);
    expect(fc.stream.req).toMatchObject({ Stream: true, KeepAlive: true, Endpoints: ["10.0.0.1:1"] });
    fc.stream.push({ Node: {} as never });
    fc.stream.push({ PeersRemoved: [3] });
    await fc.until(() => got.length === 2);
    expect(got.map(([, f]) => f)).toEqual([true, false]);
    // Server ends the stream: the loop reconnects and the next first message is full again.
    fc.stream.close();
    await fc.until(() => fc.streams.length === 2);
    fc.stream.push({ Node: {} as never });
    await fc.until(() => got.length === 3);
    expect(got[2]![1]).toBe(true);
    await l.stop();
  });

  it("reconnects forever with growing backoff while the server is down", async () => {
    const fc = new FakeControl();
    fc.down = new ControlError(0, "connect_failed", "ECONNREFUSED");
    const { l, disc, sleeps } = loop(fc);
    l.start();
    await fc.until(() => fc.dials >= 6);
    expect(disc.length).toBeGreaterThanOrEqual(5);
    expect(sleeps.slice(0, 5)).toEqual([1000, 1999, 3998, 7996, 15992]);
    fc.down = null;
    await fc.until(() => fc.streams.length === 1);
    await l.stop();
  });

  it("a refusal (401/403/404) goes to onRefused: stop ends the loop, retry keeps polling", async () => {
    const fc = new FakeControl();
    fc.onStream = (s) => s.fail(refused(401, "node_key_expired"));
    const stopped = loop(fc);
    stopped.l.start();
    await fc.until(() => !stopped.l.running);
    expect(fc.streams.length).toBe(1);

    const fc2 = new FakeControl();
    let n = 0;
    fc2.onStream = (s) => (++n < 3 ? s.fail(refused(403, "machine_not_authorized")) : undefined);
    const retry = loop(fc2, { onRefused: () => "retry" });
    retry.l.start();
    await fc2.until(() => fc2.streams.length === 3);
    expect(retry.l.running).toBe(true);
    await retry.l.stop();
  });

  it("sendUpdate posts a non-streaming OmitPeers map request on the same connection", async () => {
    const fc = new FakeControl();
    const { l } = loop(fc);
    l.start();
    await fc.until(() => fc.streams.length === 1);
    l.sendUpdate();
    await fc.until(() => fc.updates.length === 1);
    expect(fc.updates[0]).toMatchObject({ Stream: false, OmitPeers: true });
    expect(fc.dials).toBe(1);
    await l.stop();
  });
});
