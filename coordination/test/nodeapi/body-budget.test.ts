/**
 * Control-channel request bodies share one in-flight budget (issue 6 A7, the memory side):
 * stalled uploads spread over many streams and channels cannot hold more than
 * `maxBodyBytesInFlight`; beyond it a stream gets 503 and the bytes are given back.
 */
import { afterEach, expect, it } from "vitest";
import http from "node:http";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { noiseKeyPair } from "@lattice/control-client";
import { attachNodeApi, type NodeApi } from "../../src/nodeapi/attach.js";
import { MemoryBackend } from "./memory-backend.js";
import { stalledH2Streams, type StalledStreams } from "../hostile/clients.js";
import { waitFor } from "../harness.js";

let server: http.Server | null = null;
let api: NodeApi | null = null;
let hostile: StalledStreams[] = [];
afterEach(async () => {
  for (const h of hostile) h.close();
  hostile = [];
  api?.close();
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = null;
});

it("stalled request bodies beyond the shared in-flight budget get 503; the budget is returned when they end", async () => {
  server = http.createServer();
  api = attachNodeApi(server, new MemoryBackend(), {
    serverKey: noiseKeyPair(new Uint8Array(randomBytes(32))),
    maxBodyBytesInFlight: 10_000,
    bodyTimeoutMs: 60_000,
  });
  server.on("request", (req, res) => {
    if (!api!.handleRequest(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // 2 channels x 3 streams x 3000 bytes = 18 000 > 10 000: some streams must be refused.
  const h = await stalledH2Streams(url, 2, 3, 3000);
  hostile.push(h);
  await waitFor(() => h.outcomes.filter((o) => o.status === "503").length >= 3);
  const refused = h.outcomes.filter((o) => o.status === "503").length;
  expect(refused).toBeLessThan(6);
  expect(api.bodyBytesInFlight()).toBeLessThanOrEqual(10_000);
  // Closing the hostile streams gives their bytes back: a new upload fits again.
  h.close();
  const again = await stalledH2Streams(url, 1, 3, 3000);
  hostile.push(again);
  await waitFor(() => api!.bodyBytesInFlight() === 9000);
  expect(again.outcomes.filter((o) => o.status === "503").length).toBe(0);
});
