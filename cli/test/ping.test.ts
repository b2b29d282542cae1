import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PingResult } from "../src/types.js";
import { FakeLocalApi } from "./fake-localapi.js";
import { NOW, runCli } from "./harness.js";

let fake: FakeLocalApi;
beforeEach(async () => { fake = await new FakeLocalApi(NOW).start(); });
afterEach(async () => { await fake.close(); });

const s = (): string[] => ["--socket", fake.socketPath];
const viaDerp = (ms: number): PingResult => ({ IP: "100.64.0.2", NodeIP: "100.64.0.2", NodeName: "bravo", LatencySeconds: ms / 1000, Endpoint: "", DERPRegionID: 900, DERPRegionCode: "fra" });
const direct = (ms: number): PingResult => ({ IP: "100.64.0.2", NodeIP: "100.64.0.2", NodeName: "bravo", LatencySeconds: ms / 1000, Endpoint: "192.0.2.7:41641", DERPRegionID: 0, DERPRegionCode: "" });

describe("lattice ping", () => {
  it("resolves a hostname, reports DERP then direct pongs and stops at the first direct one", async () => {
    fake.state.pingAnswers = [viaDerp(23.4), viaDerp(1234.5), direct(0.6)];
    const r = await runCli(["ping", "bravo", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe([
      "pong from bravo (100.64.0.2) via DERP(fra) in 23ms",
      "pong from bravo (100.64.0.2) via DERP(fra) in 1.235s",
      "pong from bravo (100.64.0.2) via 192.0.2.7:41641 in 1ms",
      "",
    ].join("\n"));
    const q = fake.calls("/localapi/v0/ping").map((c) => Object.fromEntries(c.query));
    expect(q).toEqual(Array(3).fill({ ip: "100.64.0.2", type: "disco", timeout: "5000" }));
    expect(r.slept).toBe(2000); // one second between pings
  });

  it.each([["-c", "3"], ["-c=3"]])("%j: never direct → exactly 3 pings, `direct connection not established`, exit 1", async (...c) => {
    fake.state.pingAnswers = Array(10).fill(viaDerp(5));
    const r = await runCli(["ping", ...c, "bravo.tail.lattice.", ...s()]);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split("\n")).toHaveLength(3);
    expect(r.stderr).toBe("lattice: direct connection not established\n");
    expect(fake.calls("/localapi/v0/ping")).toHaveLength(3);
  });

  it("defaults to 10 pings; --until-direct=false sends all and exits 0", async () => {
    fake.state.pingAnswers = Array(20).fill(direct(1));
    const r = await runCli(["ping", "--until-direct=false", "100.64.0.2", ...s()]);
    expect(r.code).toBe(0);
    expect(fake.calls("/localapi/v0/ping")).toHaveLength(10);
  });

  it("a timed-out ping prints `ping \"IP\" timed out` and goes on; none answered → `no reply`, exit 1", async () => {
    fake.state.pingAnswers = ["timeout", direct(2)];
    const ok = await runCli(["ping", "--timeout", "2s", "bravo", ...s()]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('ping "100.64.0.2" timed out\npong from bravo (100.64.0.2) via 192.0.2.7:41641 in 2ms\n');
    expect(fake.calls("/localapi/v0/ping")[0]!.query.get("timeout")).toBe("2000");
    fake.state.pingAnswers = [];
    const none = await runCli(["ping", "-c", "2", "bravo", ...s()]);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe('ping "100.64.0.2" timed out\nping "100.64.0.2" timed out\n');
    expect(none.stderr).toBe("lattice: no reply\n");
  });

  it("a daemon that does not answer a ping in time counts as a timed-out ping (client-side deadline)", async () => {
    fake.state.override = (req) => req.path === "/localapi/v0/ping"; // swallowed: never answered
    const r = await runCli(["ping", "-c", "1", "--timeout", "100ms", "bravo", ...s()]);
    expect(r).toMatchObject({ code: 1, stdout: 'ping "100.64.0.2" timed out\n', stderr: "lattice: no reply\n" });
  });

  it("-c 0 pings until direct, however long it takes", async () => {
    fake.state.pingAnswers = [...Array(15).fill(viaDerp(9)), direct(1)];
    const r = await runCli(["ping", "-c", "0", "bravo", ...s()]);
    expect(r.code).toBe(0);
    expect(fake.calls("/localapi/v0/ping")).toHaveLength(16);
  });

  it("--tsmp / --icmp send that type and stop after one pong", async () => {
    fake.state.pingAnswers = [{ ...viaDerp(3), DERPRegionID: 0, DERPRegionCode: "" }];
    const r = await runCli(["ping", "--tsmp", "-c", "5", "bravo", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("pong from bravo (100.64.0.2) via TSMP in 3ms\n");
    expect(fake.calls("/localapi/v0/ping")[0]!.query.get("type")).toBe("TSMP");
    fake.state.pingAnswers = [direct(3)];
    await runCli(["ping", "--icmp", "bravo", ...s()]);
    expect(fake.calls("/localapi/v0/ping")[1]!.query.get("type")).toBe("ICMP");
    const both = await runCli(["ping", "--icmp", "--tsmp", "bravo", ...s()]);
    expect(both.code).toBe(2);
  });

  it("the node's own IP: `IP is local Lattice IP`, no ping sent", async () => {
    const r = await runCli(["ping", "alpha", ...s()]);
    expect(r).toMatchObject({ code: 0, stdout: "100.64.0.1 is local Lattice IP\n" });
    expect(fake.calls("/localapi/v0/ping")).toHaveLength(0);
  });

  it("unknown host → exit 1 naming it; PingResult.Err → exit 1 with it; bad -c → exit 2", async () => {
    const u = await runCli(["ping", "zulu", ...s()]);
    expect(u).toMatchObject({ code: 1, stderr: 'lattice: no peer found with name or IP "zulu"\n' });
    fake.state.pingAnswers = [{ ...direct(0), Err: "no matching peer" }];
    const e = await runCli(["ping", "100.64.0.2", ...s()]);
    expect(e).toMatchObject({ code: 1, stderr: "lattice: no matching peer\n" });
    const c = await runCli(["ping", "-c", "-1", "bravo", ...s()]);
    expect(c).toMatchObject({ code: 2, stderr: 'lattice: invalid value "-1" for -c: must be between 0 and 1000000\n' });
  });

  it("an IP no node has is pinged as given (the daemon decides, as in Tailscale)", async () => {
    fake.state.pingAnswers = [{ ...direct(4), IP: "10.1.2.3", NodeIP: "100.64.0.2" }];
    const r = await runCli(["ping", "10.1.2.3", ...s()]);
    expect(r.code).toBe(0);
    expect(fake.calls("/localapi/v0/ping")[0]!.query.get("ip")).toBe("10.1.2.3");
  });

  it("not running: the state message, exit 1, no ping", async () => {
    fake.state.status.BackendState = "Stopped";
    const r = await runCli(["ping", "bravo", ...s()]);
    expect(r).toMatchObject({ code: 1, stdout: "Lattice is stopped.\n" });
    expect(fake.calls("/localapi/v0/ping")).toHaveLength(0);
  });
});
