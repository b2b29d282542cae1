/**
 * When the stored policy does not compile for the tailnet anyway (it should never happen:
 * data changes do not run the policy's tests), every node fails closed — empty packet
 * filter, no peers — and the failure shows in `nodes list` data, `/health` and the log.
 * A compiler that fails on demand is injected; everything else is the real server code.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type http from "node:http";
import { IncrementalCompiler, type Policy, type Topology } from "@lattice/policy";
import { formatKey, type MapResponse } from "@lattice/types";
import { createControl, type Control } from "../src/app.js";
import { ControlNodeBackend } from "../src/services/node-backend.js";
import { createMainServer } from "../src/http/server.js";
import { PolicyCompileError } from "../src/errors.js";
import { MapSession } from "../src/mapper/session.js";

const key = (kind: "node" | "machine") => formatKey(kind, new Uint8Array(randomBytes(32)));

describe("a policy that stops compiling fails closed and is visible", () => {
  let c: Control;
  let server: http.Server | undefined;
  beforeEach(async () => {
    c = await createControl({ db: join(mkdtempSync(join(tmpdir(), "lattice-failclosed-")), "t.db"), options: { serverUrl: "http://control.test" } });
    await c.users.create({ name: "alice" });
  });
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
    await c.close();
  });

  it("cuts every node off (empty filter, no peers), reports it in nodes list, /health and the log, and recovers", async () => {
    let fail = false;
    const compilers = new Map<Policy, IncrementalCompiler>();
    const compile = (policy: Policy, topology: Topology) => {
      if (fail) throw new Error("injected compiler failure");
      let inc = compilers.get(policy);
      if (!inc) compilers.set(policy, (inc = new IncrementalCompiler(policy)));
      return inc.compile(topology);
    };
    const errors: unknown[] = [];
    const backend = await ControlNodeBackend.create(c, { compile, onError: (e) => errors.push(e) });
    const { key: k } = await c.authKeys.create({ user: "alice", reusable: true, preapproved: true });
    const reg = (host: string) => c.nodes.registerWithAuthKey({ machineKey: key("machine"), nodeKey: key("node"), hostname: host }, k);
    const a = await reg("a");
    const b = await reg("b");
    await backend.settled();
    // a's stream, fed every change set as the map stream does.
    const session = new MapSession(a.id);
    const before = session.full(backend.netmapState())!;
    expect(before.Peers!.map((p) => p.ID)).toEqual([b.id]);
    expect(before.PacketFilter!.length).toBeGreaterThan(0);
    const sent: MapResponse[] = [];
    backend.subscribe((ch) => {
      const d = session.delta(ch, backend.netmapState());
      if (d.response) sent.push(d.response);
    });

    fail = true;
    const cut = await reg("c");
    await backend.settled();
    const st = backend.netmapState();
    for (const id of [a.id, b.id, cut.id]) {
      const full = new MapSession(id).full(st)!;
      expect(full.Peers).toEqual([]);
      expect(full.PacketFilter).toEqual([]);
    }
    // The connected stream is told: its peer goes away and its filter empties.
    expect(sent.flatMap((r) => r.PeersRemoved ?? [])).toEqual([b.id]);
    expect(sent.some((r) => r.PacketFilter?.length === 0)).toBe(true);
    expect(sent.flatMap((r) => r.PeersChanged ?? []).map((p) => p.ID)).not.toContain(cut.id);
    await c.nodes.rename(String(b.id), "b2");
    await backend.settled();
    // Visible: logged once, in the health state, in every approved node's view, on /health.
    expect(errors.filter((e) => e instanceof PolicyCompileError)).toHaveLength(1);
    expect((errors[0] as Error).message).toMatch(/injected compiler failure.*cut off/);
    const health = c.policies.health();
    expect(health.ok).toBe(false);
    for (const n of await c.nodes.list()) expect(n.policyError).toMatch(/^policy_compile_failed: .*injected compiler failure/);
    server = createMainServer(c, { log: { error() {} } });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
    const res = await fetch(url);
    expect(res.status).toBe(503);
    expect((await res.json()).error.code).toBe("policy_compile_failed");

    // The next compile that works restores everything.
    fail = false;
    await c.nodes.rename(String(b.id), "b3");
    await backend.settled();
    expect(c.policies.health().ok).toBe(true);
    expect((await fetch(url)).status).toBe(200);
    expect((await c.nodes.list()).every((n) => n.policyError === null)).toBe(true);
    const back = new MapSession(a.id).full(backend.netmapState())!;
    expect(back.Peers!.map((p) => p.ID).sort()).toEqual([b.id, cut.id].sort());
    expect(back.PacketFilter!.length).toBeGreaterThan(0);
    backend.close();
  });
});
