import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeLocalApi } from "./fake-localapi.js";
import { NOW, runCli } from "./harness.js";

let fake: FakeLocalApi;
beforeEach(async () => { fake = await new FakeLocalApi(NOW).start(); });
afterEach(async () => { await fake.close(); });

const s = (): string[] => ["--socket", fake.socketPath];

describe("lattice ip", () => {
  it("prints this node's addresses one per line; -4 / -6 / -1 select", async () => {
    expect((await runCli(["ip", ...s()])).stdout).toBe("100.64.0.1\nfd7a:115c:a1e0::1\n");
    expect((await runCli(["ip", "-4", ...s()])).stdout).toBe("100.64.0.1\n");
    expect((await runCli(["ip", "-6", ...s()])).stdout).toBe("fd7a:115c:a1e0::1\n");
    expect((await runCli(["ip", "-1", ...s()])).stdout).toBe("100.64.0.1\n");
  });

  it("a peer by name, by DNS name or by either of its IPs (IPv6 in any spelling)", async () => {
    for (const who of ["charlie", "CHARLIE", "charlie.tail.lattice", "100.64.0.3", "fd7a:115c:a1e0:0:0:0:0:3"]) {
      const r = await runCli(["ip", "-4", who, ...s()]);
      expect(r, who).toMatchObject({ code: 0, stdout: "100.64.0.3\n" });
    }
    expect((await runCli(["ip", "-6", "echo", ...s()])).stdout).toBe("fd7a:115c:a1e0::5\n");
  });

  it("unknown peer → exit 1; -4 with -6 → exit 2; no IPv6 → exit 1", async () => {
    expect(await runCli(["ip", "100.64.9.9", ...s()])).toMatchObject({ code: 1, stderr: "lattice: no peer found with IP 100.64.9.9\n" });
    expect(await runCli(["ip", "-4", "-6", ...s()])).toMatchObject({ code: 2, stderr: "lattice: lattice ip -1, -4, and -6 are mutually exclusive\n" });
    fake.state.status.TailscaleIPs = ["100.64.0.1"];
    expect(await runCli(["ip", "-6", ...s()])).toMatchObject({ code: 1, stderr: "lattice: no Lattice IPv6 address\n" });
  });
});

describe("lattice down / logout / set", () => {
  it("down posts /down and prints nothing; again: `Lattice was already stopped.`", async () => {
    expect(await runCli(["down", ...s()])).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(fake.calls("/localapi/v0/down")).toHaveLength(1);
    expect(await runCli(["down", ...s()])).toMatchObject({ code: 0, stdout: "Lattice was already stopped.\n" });
    expect(fake.calls("/localapi/v0/down")).toHaveLength(1);
  });

  it("logout posts /logout", async () => {
    expect(await runCli(["logout", ...s()])).toMatchObject({ code: 0, stdout: "" });
    expect(fake.calls("/localapi/v0/logout")).toHaveLength(1);
    expect(fake.state.status.BackendState).toBe("NeedsLogin");
  });

  it("set PATCHes only the prefs given", async () => {
    const r = await runCli(["set", "--ssh", "--accept-dns=false", "--advertise-tags=tag:web", ...s()]);
    expect(r.code).toBe(0);
    const call = fake.calls("/localapi/v0/prefs").at(-1)!;
    expect(call.method).toBe("PATCH");
    expect(call.body).toEqual({ RunSSH: true, CorpDNS: false, AdvertiseTags: ["tag:web"] });
    expect(fake.state.prefs).toMatchObject({ RunSSH: true, CorpDNS: false, AdvertiseTags: ["tag:web"], RouteAll: false });
    await runCli(["set", "--no-accept-routes", "--hostname", "web2", ...s()]);
    expect(fake.calls("/localapi/v0/prefs").at(-1)!.body).toEqual({ RouteAll: false, Hostname: "web2" });
  });

  it("set without flags → exit 2; a value the daemon refuses → `lattice: <error>`, exit 1", async () => {
    expect(await runCli(["set", ...s()])).toMatchObject({ code: 2 });
    expect(fake.calls("/localapi/v0/prefs")).toHaveLength(0);
    const r = await runCli(["set", "--hostname", "bad_name!", ...s()]);
    expect(r).toMatchObject({ code: 1, stderr: 'lattice: prefs field Hostname: invalid hostname "bad_name!"\n' });
  });
});

describe("lattice whois", () => {
  it("prints Machine and User like Tailscale (tabwriter minwidth 10, padding 5)", async () => {
    fake.state.whois["100.64.0.2"] = {
      Node: { ID: 2, StableID: "nbravoCNTRL", Name: "bravo.tail.lattice.", Addresses: ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"], AllowedIPs: ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"] },
      UserProfile: { ID: 1, LoginName: "alice@example.com", DisplayName: "Alice" },
      CapMap: {},
    };
    const r = await runCli(["whois", "100.64.0.2:22", ...s()]);
    expect(r.code).toBe(0);
    expect(fake.calls("/localapi/v0/whois")[0]!.query.get("addr")).toBe("100.64.0.2:22");
    expect(r.stdout).toBe([
      "Machine:",
      "  Name:          bravo.tail.lattice",
      "  ID:            nbravoCNTRL",
      "  Addresses:     [100.64.0.2/32 fd7a:115c:a1e0::2/128]",
      "User:",
      "  Name:     alice@example.com",
      "  ID:       1",
      "",
    ].join("\n"));
  });

  it("a tagged node shows Tags instead of User; --json prints the answer", async () => {
    fake.state.whois["100.64.0.5"] = {
      Node: { StableID: "necho", Name: "echo.tail.lattice.", Addresses: ["100.64.0.5/32"], Tags: ["tag:server", "tag:web"] },
      UserProfile: { ID: 3, LoginName: "tagged-devices", DisplayName: "" },
    };
    const r = await runCli(["whois", "100.64.0.5", ...s()]);
    expect(r.stdout).toContain("  Tags:          tag:server, tag:web\n");
    expect(r.stdout).not.toContain("User:");
    const j = await runCli(["whois", "--json", "100.64.0.5", ...s()]);
    expect(JSON.parse(j.stdout)).toEqual(fake.state.whois["100.64.0.5"]);
  });

  it("unknown address: the daemon's 404 message, exit 1; no argument: exit 2", async () => {
    expect(await runCli(["whois", "100.64.7.7", ...s()])).toMatchObject({ code: 1, stderr: "lattice: no node found for 100.64.7.7\n" });
    expect(await runCli(["whois", ...s()])).toMatchObject({ code: 2 });
  });

  it("takes IP, IP:port, [IPv6]:port, nodekey:hex; anything else → exit 2 naming it, nothing asked", async () => {
    for (const a of ["100.64.0.2", "100.64.0.2:22", "fd7a:115c:a1e0::2", "[fd7a:115c:a1e0::2]:22", `nodekey:${"ab".repeat(32)}`]) {
      expect((await runCli(["whois", a, ...s()])).code, a).toBe(1); // 404 from the fake: it was asked
    }
    expect(fake.calls("/localapi/v0/whois")).toHaveLength(5);
    for (const a of ["bravo", "100.64.0.2:99999", "100.64.0.2:", "[100.64.0.2]:22"]) {
      const r = await runCli(["whois", a, ...s()]);
      expect(r, a).toMatchObject({ code: 2, stderr: `lattice: invalid value ${JSON.stringify(a)} for IP[:port]: expected a tailnet IP, IP:port, [IPv6]:port or nodekey:<hex>\n` });
    }
    expect(fake.calls("/localapi/v0/whois")).toHaveLength(5);
  });
});

describe("lattice netcheck", () => {
  it("prints Tailscale's Report block", async () => {
    const r = await runCli(["netcheck", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe([
      "",
      "Report:",
      "\t* Time: 2026-11-30T18:00:00.000Z",
      "\t* UDP: true",
      "\t* IPv4: yes, 198.51.100.7:41641",
      "\t* IPv6: no",
      "\t* MappingVariesByDestIP: false",
      "\t* Nearest DERP: region 900",
      "\t* DERP latency:",
      "\t\t- 900: 12.3ms",
      "\t\t- 901: 48ms",
      "",
    ].join("\n"));
  });

  it("no DERP answers and unknown mapping; --format json / json-line; a bad format → exit 2", async () => {
    fake.state.netcheck = { ...fake.state.netcheck, UDP: false, GlobalV4: "", RegionLatency: {}, MappingVariesByDestIP: null };
    const r = await runCli(["netcheck", ...s()]);
    expect(r.stdout).toContain("\t* UDP: false\n\t* IPv4: (no addr found)\n");
    expect(r.stdout).toContain("\t* MappingVariesByDestIP: \n");
    expect(r.stdout).toContain("\t* Nearest DERP: unknown (no response to latency probes)\n");
    const j = await runCli(["netcheck", "--format", "json", ...s()]);
    expect(JSON.parse(j.stdout)).toEqual(fake.state.netcheck);
    const l = await runCli(["netcheck", "--format=json-line", ...s()]);
    expect(l.stdout).toBe(JSON.stringify(fake.state.netcheck) + "\n");
    expect(await runCli(["netcheck", "--format", "xml", ...s()])).toMatchObject({ code: 2, stderr: 'lattice: invalid value "xml" for --format: must be "text", "json" or "json-line"\n' });
  });
});

describe("lattice bugreport / version", () => {
  it("bugreport prints the daemon's marker and passes the note", async () => {
    const r = await runCli(["bugreport", "ping fails", ...s()]);
    expect(r).toMatchObject({ code: 0, stdout: "BUG-alpha-20261130T180000Z-abcdef0123456789\n" });
    expect(fake.calls("/localapi/v0/bugreport")[0]!.query.get("note")).toBe("ping fails");
  });

  it("version prints the version first without a daemon; --daemon asks it", async () => {
    const r = await runCli(["version", "--socket", "/nonexistent/x.sock"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(/^\d+\.\d+\.\d+$/);
    const d = await runCli(["version", "--daemon", ...s()]);
    expect(d.stdout).toMatch(/^Client: \d+\.\d+\.\d+\nDaemon: 0\.1\.0\n$/);
  });
});
