import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeLocalApi } from "./fake-localapi.js";
import { NOW, runCli } from "./harness.js";

let fake: FakeLocalApi;
beforeEach(async () => { fake = await new FakeLocalApi(NOW).start(); });
afterEach(async () => { await fake.close(); });

const s = (): string[] => ["--socket", fake.socketPath];

describe("lattice status (text)", () => {
  it("prints Self then peers sorted by DNS name, aligned like tabwriter, with Tailscale's status words", async () => {
    const r = await runCli(["status", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe([
      "100.64.0.1  alpha    alice@          linux    -",
      "100.64.0.2  bravo    alice@          linux    active; direct 192.0.2.7:41641, tx 1234 rx 5678",
      "100.64.0.3  charlie  bob             windows  active; relay \"nyc\", tx 10 rx 20",
      "100.64.0.4  delta    alice@          linux    offline, last seen 3h ago",
      "100.64.0.5  echo     tagged-devices  linux    idle",
      "100.64.0.6  foxtrot  alice@          linux    idle, tx 1 rx 0",
      "",
    ].join("\n"));
  });

  it("--active shows only active peers; --peers=false and --no-self select rows", async () => {
    const a = await runCli(["status", "--active", ...s()]);
    expect(a.stdout.split("\n").filter(Boolean).map((l) => l.split(/\s+/)[1])).toEqual(["alpha", "bravo", "charlie"]);
    const p = await runCli(["status", "--peers=false", ...s()]);
    expect(p.stdout.trim().split("\n")).toHaveLength(1);
    expect(fake.calls("/localapi/v0/status").at(-1)!.query.get("peers")).toBe("false");
    const n = await runCli(["status", "--no-self", ...s()]);
    expect(n.stdout).not.toContain("alpha");
    expect(n.stdout.trim().split("\n")).toHaveLength(5);
    const ss = await runCli(["status", "--self=false", "--peers=true", ...s()]);
    expect(ss.stdout).toBe(n.stdout);
  });

  it("a peer without a DNS name shows its quoted HostName; an offline peer never seen shows plain offline", async () => {
    const st = fake.state.status;
    const delta = Object.values(st.Peer!).find((p) => p.HostName === "delta")!;
    delta.LastSeen = "0001-01-01T00:00:00Z";
    const bravo = Object.values(st.Peer!).find((p) => p.HostName === "bravo")!;
    bravo.DNSName = "";
    const r = await runCli(["status", ...s()]);
    expect(r.stdout).toMatch(/^100\.64\.0\.4 +delta +alice@ +linux +offline$/m);
    expect(r.stdout).toMatch(/^100\.64\.0\.2 +\("bravo"\) +alice@/m);
  });

  it("control characters from other nodes (names, OS) and from health texts are printed escaped, never raw", async () => {
    const bravo = Object.values(fake.state.status.Peer!).find((p) => p.HostName === "bravo")!;
    bravo.DNSName = "ev\u001b[2Jil.tail.lattice.";
    bravo.OS = "linux\u001b]0;pwned\u0007\r";
    fake.state.status.Health = ["control says \u001b[31mred\u202e"];
    const r = await runCli(["status", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(r.stdout).toContain("ev\\x1b[2Jil");
    expect(r.stdout).toContain("linux\\x1b]0;pwned\\x07\\x0d");
    expect(r.stdout).toContain("control says \\x1b[31mred\\u202e");
  });

  it("prints the health problems after the table", async () => {
    fake.state.status.Health = ['node key expired; run "lattice up --force-reauth"'];
    const r = await runCli(["status", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\n\n# Health check:\n# {5}- node key expired; run "lattice up --force-reauth"\n$/);
  });

  it.each([
    ["Stopped", "", "Lattice is stopped.\n"],
    ["NeedsLogin", "", "Logged out.\n"],
    ["NeedsLogin", "https://control.example.com/a/abc", "Logged out.\nLog in at: https://control.example.com/a/abc\n"],
    ["NeedsMachineAuth", "", "Machine is not yet approved by an admin.\n"],
    ["NoState", "", "unexpected state: NoState\n"],
  ] as const)("state %s (AuthURL %j): message on stdout, exit 1", async (state, url, msg) => {
    fake.state.status = { ...fake.state.status, BackendState: state, AuthURL: url };
    const r = await runCli(["status", ...s()]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(msg);
  });

  it("refuses positional arguments with exit 2", async () => {
    const r = await runCli(["status", "extra", ...s()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unexpected non-flag arguments to 'lattice status'");
  });

  it("a bad boolean value names the flag and value, exit 2", async () => {
    const r = await runCli(["status", "--json=maybe", ...s()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('lattice: invalid value "maybe" for --json: not a boolean (true or false)\n');
  });
});

describe("lattice status --json", () => {
  it("prints the daemon's Status unchanged, 2-space indented", async () => {
    const r = await runCli(["status", "--json", ...s()]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(fake.state.status);
    expect(r.stdout).toBe(JSON.stringify(fake.state.status, null, 2) + "\n");
  });

  it("--active drops idle peers; works whatever the state (no exit 1 for Stopped)", async () => {
    const r = await runCli(["status", "--json", "--active", ...s()]);
    const peers = Object.values((JSON.parse(r.stdout) as { Peer: Record<string, { HostName: string }> }).Peer);
    expect(peers.map((p) => p.HostName).sort()).toEqual(["bravo", "charlie"]);
    fake.state.status.BackendState = "Stopped";
    const st = await runCli(["status", "--json", ...s()]);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout).BackendState).toBe("Stopped");
  });
});
