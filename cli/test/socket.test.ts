import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeLocalApi } from "./fake-localapi.js";
import { NOW, runCli } from "./harness.js";

let fake: FakeLocalApi;
beforeEach(async () => { fake = await new FakeLocalApi(NOW).start(); });
afterEach(async () => { await fake.close(); });

const DOWN = "lattice: failed to connect to local latticed; it doesn't appear to be running (sudo systemctl start latticed ?)\n";

describe("choosing the socket", () => {
  it("--socket works before and after the subcommand, as --socket=PATH too", async () => {
    for (const args of [["--socket", fake.socketPath, "ip", "-4"], ["ip", "-4", "--socket", fake.socketPath], [`--socket=${fake.socketPath}`, "ip", "-4"]]) {
      expect(await runCli(args), args.join(" ")).toMatchObject({ code: 0, stdout: "100.64.0.1\n" });
    }
  });

  it("LATTICE_SOCKET is used without --socket; --socket wins over it", async () => {
    expect(await runCli(["ip", "-4"], { env: { LATTICE_SOCKET: fake.socketPath } })).toMatchObject({ code: 0, stdout: "100.64.0.1\n" });
    expect(await runCli(["ip", "-4", "--socket", join(fake.dir, "none.sock")], { env: { LATTICE_SOCKET: fake.socketPath } })).toMatchObject({ code: 1, stderr: DOWN });
  });

  it("an empty --socket is refused (exit 2), never dialled as TCP", async () => {
    expect(await runCli(["status", "--socket="])).toMatchObject({ code: 2, stderr: 'lattice: invalid value "" for --socket: empty path\n' });
  });

  it("every request carries the Host header the LocalAPI accepts", async () => {
    await runCli(["status", "--socket", fake.socketPath]);
    expect(fake.requests.map((r) => r.host)).toEqual(["local-tailscaled.sock"]);
  });
});

describe("daemon not running", () => {
  it.each(["status", "up", "down", "logout", "ip", "netcheck", "bugreport"])("%s: no socket → Tailscale's message adapted, exit 1", async (cmd) => {
    const r = await runCli([cmd, "--socket", join(fake.dir, "missing.sock")]);
    expect(r).toMatchObject({ code: 1, stdout: "", stderr: DOWN });
  });

  it("a path that is not a listening socket (stale file) → the same message", async () => {
    const stale = join(fake.dir, "stale.sock");
    writeFileSync(stale, "");
    expect(await runCli(["status", "--socket", stale])).toMatchObject({ code: 1, stderr: DOWN });
  });
});

describe("LocalAPI errors", () => {
  it("a JSON error is printed as `lattice: <error>`, exit 1", async () => {
    fake.state.override = (req, res) => {
      if (req.method !== "POST") return false;
      res.writeHead(403, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: "writes need root or the operator (uid 1000 is neither)", code: "forbidden" }));
      return true;
    };
    expect(await runCli(["down", "--socket", fake.socketPath])).toMatchObject({ code: 1, stderr: "lattice: writes need root or the operator (uid 1000 is neither)\n" });
  });

  it("a non-JSON error answer names the HTTP status; invalid JSON on 200 is an error, not a crash", async () => {
    fake.state.override = (_req, res) => {
      res.writeHead(500, { "Content-Type": "text/plain" });
      res.end("oops");
      return true;
    };
    expect(await runCli(["status", "--socket", fake.socketPath])).toMatchObject({ code: 1, stderr: "lattice: LocalAPI answered HTTP 500: oops\n" });
    fake.state.override = (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end("{not json");
      return true;
    };
    expect(await runCli(["status", "--socket", fake.socketPath])).toMatchObject({ code: 1, stderr: "lattice: GET /localapi/v0/status: latticed answered with invalid JSON\n" });
  });

  it("an answer over 32 MiB is refused", async () => {
    fake.state.override = (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      for (let i = 0; i < 33; i++) res.write(chunk);
      res.end("{}");
      return true;
    };
    const r = await runCli(["status", "--socket", fake.socketPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("lattice: GET /localapi/v0/status: answer larger than 33554432 bytes\n");
  });
});
