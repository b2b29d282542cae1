/**
 * Hostile nesting (`[[[[…` hundreds of thousands deep) in the JSON/huJSON texts the server
 * parses — policies and DNS settings, over REST and the admin socket — is a 400 naming
 * line:column, never a stack overflow answered as a 500 (json-depth.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type ServerProc } from "./harness.js";

describe("nesting limits of parsed texts", () => {
  let s: ServerProc;
  let key: string;
  beforeAll(async () => {
    s = await startServer();
    key = (await s.cli(["apikeys", "create"])).stdout.trim();
  });
  afterAll(async () => s?.stop());

  const put = (method: string, path: string, type: string, body: string) =>
    fetch(`${s.url}/api/v1${path}`, { method, headers: { authorization: `Bearer ${key}`, "content-type": type }, body });

  it("a deeply nested policy is refused with 400 policy_invalid naming line:column (REST raw, REST {policy}, check)", async () => {
    const deep = `{"acls": ${"[".repeat(300_000)}`;
    for (const r of [
      await put("PUT", "/policy", "application/hujson", deep),
      await put("PUT", "/policy", "application/json", JSON.stringify({ policy: deep })),
      await put("POST", "/policy/check", "application/hujson", deep),
    ]) {
      expect(r.status).toBe(400);
      const e = ((await r.json()) as any).error;
      expect(e.code).toBe("policy_invalid");
      expect(e.message).toBe("invalid policy: nested deeper than 64 levels at 1:73");
    }
    // Nesting within the limit still parses (and is judged on its content).
    const ok = await put("POST", "/policy/check", "application/hujson", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}], "nodeAttrs": [], "x": ${"[".repeat(60)}${"]".repeat(60)}}`);
    expect(ok.status).toBe(400);
    expect(((await ok.json()) as any).error.message).not.toContain("nested");
  });

  it("a deeply nested DNS document is refused with 400 bad_json (CLI and REST)", async () => {
    const r = await put("PUT", "/dns", "application/hujson", "{".repeat(300_000));
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error.message).toBe("DNS settings are nested deeper than 16 levels at 1:17");
    const cli = await s.cli(["dns", "set", "-"], `{"splitDNS": ${"[".repeat(300_000)}`);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toBe("error: DNS settings are nested deeper than 16 levels at 1:29\n");
    expect(s.stdout()).not.toMatch(/"level":50|RangeError/);
  });
});
