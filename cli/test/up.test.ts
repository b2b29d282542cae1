import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UpRequest } from "../src/types.js";
import { FakeLocalApi } from "./fake-localapi.js";
import { NOW, runCli } from "./harness.js";

let fake: FakeLocalApi;
beforeEach(async () => { fake = await new FakeLocalApi(NOW).start(); });
afterEach(async () => { await fake.close(); });

const s = (): string[] => ["--socket", fake.socketPath];
const upBody = (): UpRequest => fake.calls("/localapi/v0/up").at(-1)!.body as UpRequest;

describe("lattice up: flags → UpRequest", () => {
  it.each([
    [["--auth-key=tskey-abc"]],
    [["--auth-key", "tskey-abc"]],
    [["--authkey", "tskey-abc"]],
    [["--authkey=tskey-abc"]],
  ])("%j sends AuthKey", async (flags) => {
    const r = await runCli(["up", ...flags, ...s()]);
    expect(r.code).toBe(0);
    expect(upBody()).toEqual({ AuthKey: "tskey-abc" });
  });

  it("maps every pref flag and leaves unset ones out", async () => {
    const r = await runCli(["up", "--login-server=https://ctl.example.com/", "--hostname", "web1", "--ssh", "--advertise-tags", "tag:a,tag:b",
      "--accept-routes", "--accept-dns=false", "--reset", "--force-reauth=false", ...s()]);
    expect(r.code).toBe(0);
    expect(upBody()).toEqual({ ControlURL: "https://ctl.example.com", Hostname: "web1", RunSSH: true, AdvertiseTags: ["tag:a", "tag:b"], RouteAll: true, CorpDNS: false, Reset: true, ForceReauth: false });
    await runCli(["up", ...s()]);
    expect(upBody()).toEqual({});
  });

  it("reads the key from file:PATH", async () => {
    const f = join(fake.dir, "key");
    writeFileSync(f, "tskey-fromfile\n", { mode: 0o600 });
    chmodSync(f, 0o600);
    await runCli(["up", `--auth-key=file:${f}`, ...s()]);
    expect(upBody().AuthKey).toBe("tskey-fromfile");
    const bad = await runCli(["up", `--auth-key=file:${f}.missing`, ...s()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`invalid value "file:${f}.missing" for --auth-key: cannot read`);
  });

  it.each([
    [["--advertise-tags", "web"], 'invalid value "web" for --advertise-tags: tags must start with "tag:"'],
    [["--timeout", "soon"], 'invalid value "soon" for --timeout: not a duration'],
    [["--login-server", "ftp://x"], 'invalid value "ftp://x" for --login-server: must be an http:// or https:// URL'],
    [["--ssh=yes"], 'invalid value "yes" for --ssh: not a boolean'],
    [["--auth-key=a", "--authkey=b"], "--auth-key and --authkey are the same flag"],
    [["--bogus"], "unknown option '--bogus'"],
  ])("bad input %j → exit 2 naming flag and value, nothing sent", async (flags, msg) => {
    const r = await runCli(["up", ...flags, ...s()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(msg);
    expect(fake.calls("/localapi/v0/up")).toHaveLength(0);
  });
});

describe("lattice up: waiting for Running", () => {
  it("already Running (auth key): prints nothing, exit 0", async () => {
    const r = await runCli(["up", "--auth-key=k", ...s()]);
    expect(r).toMatchObject({ code: 0, stdout: "", stderr: "" });
  });

  it("interactive: prints the login URL once (Tailscale's text), polls until Running, then Success.", async () => {
    const url = "https://control.example.com/a/0123456789";
    fake.state.status.BackendState = "NeedsLogin";
    fake.state.onUp = () => ({ BackendState: "NeedsLogin", AuthURL: url });
    fake.state.statusScript = [
      { BackendState: "NeedsLogin", AuthURL: url },
      { BackendState: "NeedsLogin", AuthURL: url },
      { BackendState: "Starting", AuthURL: "" },
      { BackendState: "Running", AuthURL: "" },
    ];
    const r = await runCli(["up", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`\nTo authenticate, visit:\n\n\t${url}\n\nSuccess.\n`);
    expect(fake.calls("/localapi/v0/status").length).toBe(4);
    expect(fake.calls("/localapi/v0/status").every((c) => c.query.get("peers") === "false")).toBe(true);
  });

  it("awaiting approval: says so once, then Success. when approved", async () => {
    fake.state.onUp = () => ({ BackendState: "NeedsMachineAuth", AuthURL: "" });
    fake.state.statusScript = [{ BackendState: "NeedsMachineAuth" }, { BackendState: "NeedsMachineAuth" }, { BackendState: "Running" }];
    const r = await runCli(["up", "--auth-key=k", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/Machine is not yet approved by an admin\./g)).toHaveLength(1);
    expect(r.stderr.endsWith("Success.\n")).toBe(true);
  });

  it("--timeout expires while never Running: exit 1 with the timeout message", async () => {
    fake.state.onUp = () => ({ BackendState: "NeedsMachineAuth", AuthURL: "" });
    fake.state.status.BackendState = "NeedsMachineAuth";
    const r = await runCli(["up", "--timeout", "2s", ...s()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('lattice: timeout waiting for Lattice to enter a Running state (last state: NeedsMachineAuth); check health with "lattice status"');
    expect(r.slept).toBe(2000);
  });

  it.each(["500ms", "1m", "30s", "1m30s"])("--timeout %s parses as a Go duration", async (d) => {
    fake.state.onUp = () => ({ BackendState: "Starting", AuthURL: "" });
    fake.state.status.BackendState = "Starting";
    const r = await runCli(["up", `--timeout=${d}`, ...s()]);
    expect(r.code).toBe(1);
    const ms = { "500ms": 500, "1m": 60_000, "30s": 30_000, "1m30s": 90_000 }[d];
    expect(r.slept).toBe(ms);
  });

  it("--json: one JSON object per line: the URL, then Running", async () => {
    const url = "https://control.example.com/a/xyz";
    fake.state.onUp = () => ({ BackendState: "NeedsLogin", AuthURL: url });
    fake.state.statusScript = [{ BackendState: "NeedsLogin", AuthURL: url }, { BackendState: "Running", AuthURL: "" }];
    const r = await runCli(["up", "--json", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown)).toEqual([
      { AuthURL: url, BackendState: "NeedsLogin" },
      { BackendState: "Running" },
    ]);
  });

  it("--force-reauth on a Running node waits for the new node key", async () => {
    const oldKey = fake.state.status.Self!.PublicKey;
    fake.state.onUp = () => ({ BackendState: "Running", AuthURL: "" });
    fake.state.statusScript = [{}, {}, { Self: { ...fake.state.status.Self!, PublicKey: "nodekey:" + "ab".repeat(32) } }];
    const r = await runCli(["up", "--force-reauth", ...s()]);
    expect(r.code).toBe(0);
    expect(upBody().ForceReauth).toBe(true);
    expect(fake.calls("/localapi/v0/status").length).toBe(3);
    expect(oldKey).not.toBe("nodekey:" + "ab".repeat(32));
  });

  it("a LocalAPI error on up: `lattice: <error>`, exit 1", async () => {
    fake.state.onUp = () => ({ status: 502, code: "control_error", error: "control server https://c.example.com: invalid auth key" });
    const r = await runCli(["up", "--auth-key=bad", ...s()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("lattice: control server https://c.example.com: invalid auth key\n");
  });
});
