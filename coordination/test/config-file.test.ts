/**
 * Issue 11: the config file as YAML (the documented sample passes `configtest`), `configtest`
 * naming the bad key, and PostgreSQL ergonomics: a connection error names the host and
 * the cause, `--db-password-file` never shows the password.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { freePort, runCli } from "./harness.js";
import { serveExpectingExit } from "./startup-process.js";

const SAMPLE = resolve(fileURLToPath(new URL(".", import.meta.url)), "../lattice-control.sample.yaml");

describe("config file and PostgreSQL ergonomics (issue 11)", () => {
  const dir = mkdtempSync(join(tmpdir(), "lattice-config-"));

  it("configtest accepts the documented YAML sample", async () => {
    const r = await runCli(["configtest", "--config", SAMPLE]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("configuration OK");
    expect(r.stdout).toContain("server URL https://control.example.com");
  });

  it("configtest names an unknown key, a bad value and broken YAML; JSON still works", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "listen: 0.0.0.0:8080\nlistne: 1.2.3.4:80\n");
    const r = await runCli(["configtest", "--config", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: --config ${bad}: config: unknown field "listne"`);
    const badVal = join(dir, "val.yml");
    writeFileSync(badVal, "listen: nowhere\n");
    expect((await runCli(["configtest", "--config", badVal])).stderr).toContain(`listen: "nowhere" is not ADDR:PORT`);
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, "listen: [unclosed\n");
    expect((await runCli(["configtest", "--config", broken])).stderr).toMatch(/not valid YAML/);
    const json = join(dir, "c.json");
    writeFileSync(json, JSON.stringify({ listen: "127.0.0.1:9999" }));
    expect((await runCli(["configtest", "--config", json])).stdout).toContain("listen 127.0.0.1:9999");
  });

  it("a PostgreSQL connection error names the host and the cause; the password file's content is never shown", async () => {
    const port = await freePort();
    const pwFile = join(dir, "pw");
    writeFileSync(pwFile, "s3cret-pass\n", { mode: 0o600 });
    const r = await serveExpectingExit(["--db", `postgres://lattice@127.0.0.1:${port}/lattice`, "--db-password-file", pwFile, "--socket", join(dir, "s.sock"), "--listen", "127.0.0.1:0"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cannot connect: .*ECONNREFUSED.* \\(PostgreSQL server 127\\.0\\.0\\.1:${port}\\)`));
    expect(r.stderr).not.toContain("s3cret-pass");
    const sqlite = await serveExpectingExit(["--db", join(dir, "x.db"), "--db-password-file", pwFile, "--socket", join(dir, "t.sock"), "--listen", "127.0.0.1:0"]);
    expect(sqlite.code).toBe(1);
    expect(sqlite.stderr).toContain(`--db-password-file ${pwFile}: only applies to a postgres:// --db`);
  });
});
