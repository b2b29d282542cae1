/** `lattice-control policy compile` (offline) and `serve` config errors, as a real process. */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { requireBuilt, runCli } from "./harness.js";

// The captured corpus shipped inside the repo (packages/policy/test/corpus/tailscale/README.md).
const corpus = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../packages/policy/test/corpus/tailscale/acl.json");

describe("policy compile (offline)", () => {
  const dir = mkdtempSync(join(tmpdir(), "lattice-compile-"));
  const cases = JSON.parse(readFileSync(corpus, "utf8")) as any[];
  const accepted = cases.find((c) => c.status === 200 && typeof c.policy === "object")!;
  const rejected = cases.find((c) => c.status === 400)!;

  it("prints one JSON object keyed by node name with the corpus entry shape", async () => {
    requireBuilt();
    writeFileSync(join(dir, "p.json"), JSON.stringify(accepted.policy));
    writeFileSync(join(dir, "t.json"), JSON.stringify(accepted.topology));
    const r = await runCli(["policy", "compile", "--policy", join(dir, "p.json"), "--topology", join(dir, "t.json")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out).sort()).toEqual(Object.keys(accepted.topology.nodes).sort());
    for (const v of Object.values(out) as any[]) {
      expect(Array.isArray(v.packetFilter)).toBe(true);
      expect(typeof v.peers).toBe("object");
    }
    const one = await runCli(["policy", "compile", "--policy", join(dir, "p.json"), "--topology", join(dir, "t.json"), "--node", Object.keys(accepted.topology.nodes)[0]!]);
    expect(one.code).toBe(0);
    // With --node, compileFiles prints that node's entry alone (the same as in the full output).
    expect(JSON.parse(one.stdout)).toEqual(out[Object.keys(accepted.topology.nodes)[0]!]);
  });

  it("exits non-zero with the error on stderr for a rejected policy", async () => {
    writeFileSync(join(dir, "bad.json"), typeof rejected.policy === "string" ? rejected.policy : JSON.stringify(rejected.policy));
    writeFileSync(join(dir, "t2.json"), JSON.stringify(rejected.topology));
    const r = await runCli(["policy", "compile", "--policy", join(dir, "bad.json"), "--topology", join(dir, "t2.json")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: /);
    expect(r.stdout).toBe("");
  });

  it("reports a missing file by name", async () => {
    const r = await runCli(["policy", "compile", "--policy", join(dir, "nope.json"), "--topology", join(dir, "t.json")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("nope.json");
  });
});

describe("serve config errors", () => {
  it("an unknown config-file key stops the server with a message naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-cfg-"));
    writeFileSync(join(dir, "c.json"), JSON.stringify({ lisen: "127.0.0.1:1" }));
    const r = await runCli(["serve", "--config", join(dir, "c.json"), "--db", join(dir, "x.db"), "--socket", join(dir, "s.sock")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown field "lisen"/);
  });
  it("a bad --listen is rejected", async () => {
    const r = await runCli(["serve", "--listen", "localhost"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/listen: "localhost" is not ADDR:PORT/);
  });
});
