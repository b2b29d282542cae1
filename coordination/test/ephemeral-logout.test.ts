/**
 * Logout (RegisterRequest with an Expiry in the past, what `lattice logout` / `down` of an
 * ephemeral node sends): an ephemeral node is deleted at once and its peers get
 * PeersRemoved within seconds; a non-ephemeral node only has its key expired.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, TestNode, type ServerProc } from "./harness.js";

describe("logout", () => {
  let s: ServerProc;
  beforeAll(async () => {
    s = await startServer({ args: ["--no-derp"] });
    expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
  });
  afterAll(async () => {
    await s?.stop();
  });

  const listNodes = async (): Promise<any[]> => JSON.parse((await s.cli(["nodes", "list", "--json"])).stdout);

  async function pair(ephemeral: boolean): Promise<{ gone: TestNode; peer: TestNode; goneId: number; stream: AsyncIterator<any> }> {
    const k = (await s.cli(["keys", "create", "--user", "alice", "--preapproved", "--reusable", ...(ephemeral ? ["--ephemeral"] : [])])).stdout.trim();
    const tag = ephemeral ? "eph" : "keep";
    const gone = await new TestNode(s.url, `${tag}-gone`).connect();
    const peer = await new TestNode(s.url, `${tag}-peer`).connect();
    await gone.register({ Auth: { AuthKey: k }, Hostinfo: { Hostname: `${tag}-gone` } });
    await peer.register({ Auth: { AuthKey: k }, Hostinfo: { Hostname: `${tag}-peer` } });
    const stream = peer.map()[Symbol.asyncIterator]();
    const full = (await stream.next()).value;
    const p = (full.Peers ?? []).find((x: any) => x.Name.startsWith(`${tag}-gone.`));
    expect(p, "the peer sees the node before logout").toBeDefined();
    return { gone, peer, goneId: p.ID, stream };
  }

  it("an ephemeral node that logs out is deleted at once and vanishes from its peers (PeersRemoved)", async () => {
    const { gone, peer, goneId, stream } = await pair(true);
    const t0 = Date.now();
    const out = await gone.register({ Expiry: new Date(Date.now() - 1000).toISOString() });
    expect(out.NodeKeyExpired).toBe(true);
    expect(out.MachineAuthorized).toBe(false);
    const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no PeersRemoved for the logged-out ephemeral node within 5 s")), 5000).unref());
    for (;;) {
      const m = (await Promise.race([stream.next(), timeout])).value;
      if ((m.PeersRemoved ?? []).includes(goneId)) break;
    }
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await listNodes()).some((n) => n.name === "eph-gone")).toBe(false);
    await stream.return!();
    gone.close();
    peer.close();
  });

  it("a non-ephemeral node that logs out stays, with its key expired", async () => {
    const { gone, peer, stream } = await pair(false);
    const out = await gone.register({ Expiry: new Date(Date.now() - 1000).toISOString() });
    expect(out.NodeKeyExpired).toBe(true);
    const listed = (await listNodes()).find((n) => n.name === "keep-gone");
    expect(listed?.expired).toBe(true);
    await stream.return!();
    gone.close();
    peer.close();
  });
});
