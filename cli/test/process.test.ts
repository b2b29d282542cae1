/** The built program (`cli/bin/lattice.js`, from `tsc -b`) as a real process. */
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeLocalApi } from "./fake-localapi.js";
import { BIN, runCli, spawnCli } from "./harness.js";

let fake: FakeLocalApi;
beforeAll(() => {
  if (!existsSync(join(BIN, "../../dist/main.js"))) throw new Error("cli/dist missing: run `pnpm exec tsc -b` first");
});
beforeEach(async () => { fake = await new FakeLocalApi().start(); });
afterEach(async () => { await fake.close(); });

describe("lattice as a process", () => {
  it("status against the LocalAPI socket: table on stdout, exit 0", async () => {
    const r = await spawnCli(["status", "--socket", fake.socketPath]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(/^100\.64\.0\.1 {2}alpha {4}alice@ {10}linux {4}-$/);
  });

  it("daemon down: message on stderr, exit 1; LATTICE_SOCKET honoured", async () => {
    const r = await spawnCli(["status"], { env: { LATTICE_SOCKET: join(fake.dir, "none.sock") } });
    expect(r).toMatchObject({ code: 1, stdout: "", stderr: "lattice: failed to connect to local latticed; it doesn't appear to be running (sudo systemctl start latticed ?)\n" });
  });

  it("bad flag value: exit 2 naming flag and value", async () => {
    const r = await spawnCli(["ping", "--timeout", "5 sec", "bravo", "--socket", fake.socketPath]);
    expect(r).toMatchObject({ code: 2, stderr: 'lattice: invalid value "5 sec" for --timeout: not a duration (e.g. 500ms, 30s, 1m)\n' });
  });

  it("Stopped: `Lattice is stopped.` on stdout, exit 1", async () => {
    fake.state.status.BackendState = "Stopped";
    expect(await spawnCli(["status", "--socket", fake.socketPath])).toMatchObject({ code: 1, stdout: "Lattice is stopped.\n" });
  });
});

describe("lattice nc", () => {
  let server: Server;
  let port: number;
  beforeEach(async () => {
    // answers what it received once the client half-closes, then closes
    server = createServer({ allowHalfOpen: true }, (c) => {
      const got: Buffer[] = [];
      c.on("data", (d: Buffer) => got.push(d));
      c.on("end", () => c.end(`got: ${Buffer.concat(got).toString()}`));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
    const bravo = Object.values(fake.state.status.Peer!).find((p) => p.HostName === "bravo")!;
    bravo.TailscaleIPs = ["127.0.0.1"];
  });
  afterEach(async () => { await new Promise<void>((resolve) => server.close(() => resolve())); });

  it("pipes stdin to the node's port and the answer to stdout; exits 0 when the peer closes", async () => {
    const r = await spawnCli(["nc", "bravo", String(port), "--socket", fake.socketPath], { input: "hello over the tailnet\n" });
    expect(r).toMatchObject({ code: 0, stdout: "got: hello over the tailnet\n", stderr: "" });
  });

  it("refused connection → exit 1; bad port → exit 2; unknown host → exit 1", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await runCli(["nc", "bravo", String(deadPort), "--socket", fake.socketPath])).toMatchObject({ code: 1, stderr: `lattice: dial 127.0.0.1:${deadPort}: ECONNREFUSED\n` });
    expect(await runCli(["nc", "bravo", "70000", "--socket", fake.socketPath])).toMatchObject({ code: 2, stderr: 'lattice: invalid value "70000" for port: must be between 1 and 65535\n' });
    expect(await runCli(["nc", "nobody", "22", "--socket", fake.socketPath])).toMatchObject({ code: 1, stderr: 'lattice: no peer found with name or IP "nobody"\n' });
  });
});
