/** `--derp-map FILE`: its regions join the published DERP map; a malformed file stops the server with a message. */
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, startServer, TestNode, type ServerProc } from "./harness.js";

describe("DERP map configuration", () => {
  const dir = mkdtempSync(join(tmpdir(), "lattice-derp-"));
  let s: ServerProc | undefined;
  afterAll(async () => {
    await s?.stop();
  });

  it("nodes receive the configured DERP map's regions next to the embedded relay's", async () => {
    const derp = { Regions: { "901": { RegionID: 901, RegionCode: "home", RegionName: "Home", Nodes: [{ Name: "901a", RegionID: 901, HostName: "derp.example.test", DERPPort: 443 }] } } };
    writeFileSync(join(dir, "derp.json"), JSON.stringify(derp));
    s = await startServer({ args: ["--derp-map", join(dir, "derp.json")] });
    expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
    const k = (await s.cli(["keys", "create", "--user", "alice", "--preapproved"])).stdout.trim();
    const n = await new TestNode(s.url, "derp-user").connect();
    await n.register({ Auth: { AuthKey: k } });
    const m = n.map()[Symbol.asyncIterator]();
    const full = (await m.next()).value;
    expect(full.DERPMap.Regions["901"].Nodes[0].HostName).toBe("derp.example.test");
    expect(full.DERPMap.Regions["900"].RegionCode).toBe("lattice");
    expect(full.Domain).toBe("lattice.internal");
    await m.return!();
    n.close();
  });

  it("a malformed DERP map names the field", async () => {
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ Regions: { "900": { RegionID: "x", RegionCode: "a", Nodes: [] } } }));
    const r = await runCli(["serve", "--derp-map", join(dir, "bad.json"), "--db", join(dir, "x.db"), "--socket", join(dir, "s.sock"), "--listen", "127.0.0.1:0"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/derpMap\.Regions\.900\.RegionID/);
  });
});
