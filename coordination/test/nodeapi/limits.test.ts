/**
 * The node API's size limits, source addresses and counters (issue 6 A6/A14), in process
 * over the real Noise channel with the in-memory backend: over-limit requests are refused
 * with 413 and a code, counted per code, and the register call learns the source address.
 */
import { afterEach, describe, expect, it } from "vitest";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { ControlClient, noiseKeyPair } from "@lattice/control-client";
import { formatKey, type MachineKeyString, type RegisterRequest, type RegisterResponse } from "@lattice/types";
import { attachNodeApi, type NodeApi } from "../../src/nodeapi/attach.js";
import type { RequestOrigin } from "../../src/nodeapi/backend.js";
import { MemoryBackend } from "./memory-backend.js";
import { paddedHostinfo } from "../hostile/registration-flood.js";

class RecordingBackend extends MemoryBackend {
  readonly origins: (RequestOrigin | undefined)[] = [];
  override async register(machineKey: MachineKeyString, req: RegisterRequest, _signal?: AbortSignal, origin?: RequestOrigin): Promise<RegisterResponse> {
    this.origins.push(origin);
    return super.register(machineKey, req);
  }
}

describe("node API limits", () => {
  let server: http.Server;
  let api: NodeApi;
  const clients: ControlClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    api?.close();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  it("refuses oversized register bodies and Hostinfo with 413 and a code, counts them, and passes the source to the backend", async () => {
    const backend = new RecordingBackend();
    backend.authKeys.set("tskey-good", { preapproved: true, used: false, reusable: true });
    server = http.createServer();
    api = attachNodeApi(server, backend, { serverKey: noiseKeyPair(new Uint8Array(randomBytes(32))), maxRegisterBodyBytes: 4096, maxHostinfoBytes: 2048, hostinfoMinIntervalMs: 60_000 });
    server.on("request", (req, res) => {
      if (!api.handleRequest(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const c = await ControlClient.connect({ serverUrl: url, machineKey: noiseKeyPair(new Uint8Array(randomBytes(32))) });
    clients.push(c);
    const nodeKey = formatKey("node", new Uint8Array(randomBytes(32)));
    const reg = (h: number) => c.register({ Version: 100, NodeKey: nodeKey, Auth: { AuthKey: "tskey-good" }, Hostinfo: paddedHostinfo("n", h) } as RegisterRequest);
    await expect(reg(8192)).rejects.toMatchObject({ status: 413, code: "body_too_large" });
    await expect(reg(3000)).rejects.toMatchObject({ status: 413, code: "hostinfo_too_large" });
    expect(backend.origins).toEqual([]);
    await reg(1000);
    expect(backend.origins).toEqual([{ source: "127.0.0.1" }]);
    // Map requests: oversized Hostinfo refused; changes beyond the burst held back.
    const map = (h: ReturnType<typeof paddedHostinfo>) => c.map({ Version: 100, NodeKey: nodeKey, Stream: false, OmitPeers: true, Hostinfo: h })[Symbol.asyncIterator]().next();
    await expect(map(paddedHostinfo("n", 3000))).rejects.toMatchObject({ status: 413, code: "hostinfo_too_large" });
    for (let i = 0; i < 6; i++) await map({ Hostname: `n${i}` });
    expect(api.counters.limited).toEqual({ body_too_large: 1, hostinfo_too_large: 2 });
    expect(api.counters.hostinfo.deferred).toBe(2); // first seen free, 3 in the burst, 2 held
    expect(backend.nodes.get(1)?.Hostinfo?.Hostname).toBe("n3");
  });
});
