// Issue 10, CLI side: --advertise-routes / --advertise-exit-node / --accept-routes /
// --exit-node / --exit-node-allow-lan-access / --snat-subnet-routes on `up` and `set`,
// `exit-node list|suggest`, and the exit-node words of the status column.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { calcAdvertiseRoutes, parseAdvertiseRoutes } from "../src/routes.js";
import type { PeerStatus, Prefs, UpRequest } from "../src/types.js";
import { FakeLocalApi } from "./fake-localapi.js";
import { NOW, runCli } from "./harness.js";

let fake: FakeLocalApi;
beforeEach(async () => { fake = await new FakeLocalApi(NOW).start(); });
afterEach(async () => { await fake.close(); });

const s = (): string[] => ["--socket", fake.socketPath];
const peerOf = (host: string): PeerStatus => Object.values(fake.state.status.Peer!).find((p) => p.HostName === host)!;
const patches = (): unknown[] => fake.calls("/localapi/v0/prefs").filter((c) => c.method === "PATCH").map((c) => c.body);
const upBody = (): UpRequest => fake.calls("/localapi/v0/up").at(-1)!.body as UpRequest;
const EXIT = ["0.0.0.0/0", "::/0"];

/** bravo (100.64.0.2) and echo (100.64.0.5) offer an exit node; charlie routes 10.1.0.0/16. */
function offerExits(): void {
  for (const h of ["bravo", "echo"]) {
    const p = peerOf(h);
    p.ExitNodeOption = true;
    p.AllowedIPs = [...(p.AllowedIPs ?? []), ...EXIT];
  }
  peerOf("charlie").PrimaryRoutes = ["10.1.0.0/16"];
}

describe("--advertise-routes parsing (canonical prefixes)", () => {
  it("canonical IPv4/IPv6 prefixes, deduplicated and sorted (IPv4 first); \"\" clears", () => {
    expect(parseAdvertiseRoutes("--advertise-routes", "192.168.1.0/24, 10.0.0.0/8,FD00:0:0::/64,10.0.0.0/8")).toEqual(["10.0.0.0/8", "192.168.1.0/24", "fd00::/64"]);
    expect(parseAdvertiseRoutes("--advertise-routes", "")).toEqual([]);
    expect(parseAdvertiseRoutes("--advertise-routes", "::/0,0.0.0.0/0,10.77.0.0/24")).toEqual(["0.0.0.0/0", "10.77.0.0/24", "::/0"]);
    expect(parseAdvertiseRoutes("--advertise-routes", "10.1.2.3/32")).toEqual(["10.1.2.3/32"]);
  });

  it.each([
    ["10.0.0.1/24", "10.0.0.1/24 has non-address bits set; expected 10.0.0.0/24"],
    ["10.0.0.0/24,fd00::1/64", "fd00::1/64 has non-address bits set; expected fd00::/64"],
    ["10.0.0.0/33", '"10.0.0.0/33" is not a valid IP address or CIDR prefix'],
    ["10.0.0.1", '"10.0.0.1" is not a valid IP address or CIDR prefix (a single address is 10.0.0.1/32)'],
    ["nope", '"nope" is not a valid IP address or CIDR prefix'],
    ["10.0.0.0/024", '"10.0.0.0/024" is not a valid IP address or CIDR prefix'],
    ["10.0.0.0/24,", '"" is not a valid IP address or CIDR prefix'],
    ["0.0.0.0/0", "0.0.0.0/0 advertised without its IPv6 counterpart; also advertise ::/0 (or use --advertise-exit-node)"],
    ["::/0,10.0.0.0/8", "::/0 advertised without its IPv4 counterpart; also advertise 0.0.0.0/0 (or use --advertise-exit-node)"],
  ])("%j → FlagValueError naming flag, value and the bad entry", (value, why) => {
    expect(() => parseAdvertiseRoutes("--advertise-routes", value)).toThrow(`invalid value ${JSON.stringify(value)} for --advertise-routes: ${why}`);
  });

  it("more than 256 prefixes are refused", () => {
    const many = Array.from({ length: 257 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(",");
    expect(() => parseAdvertiseRoutes("--advertise-routes", many)).toThrow("257 routes; at most 256");
    expect(parseAdvertiseRoutes("--advertise-routes", many.split(",").slice(0, 256).join(","))).toHaveLength(256);
  });

  it("each of the two flags keeps the other's part of the current routes (Tailscale's set)", () => {
    const cur = ["10.0.0.0/8", ...EXIT];
    expect(calcAdvertiseRoutes(["192.168.0.0/24"], undefined, cur)).toEqual(["192.168.0.0/24", ...EXIT]);
    expect(calcAdvertiseRoutes([], undefined, cur)).toEqual(EXIT);
    expect(calcAdvertiseRoutes(undefined, false, cur)).toEqual(["10.0.0.0/8"]);
    expect(calcAdvertiseRoutes(undefined, true, ["10.0.0.0/8"])).toEqual(["10.0.0.0/8", ...EXIT]);
    expect(calcAdvertiseRoutes(["192.168.0.0/24"], false, cur)).toEqual(["192.168.0.0/24"]);
    expect(calcAdvertiseRoutes(["0.0.0.0/0", "::/0"], undefined, [])).toEqual(EXIT);
    expect(calcAdvertiseRoutes(undefined, undefined, cur)).toBeUndefined();
  });
});

describe("lattice set: routes and exit node flags → PATCH prefs", () => {
  it("--advertise-routes keeps an advertised exit node; --advertise-exit-node=false keeps the subnet routes", async () => {
    fake.state.prefs.AdvertiseRoutes = ["10.0.0.0/8", ...EXIT];
    expect((await runCli(["set", "--advertise-routes=10.77.0.0/24,192.168.5.0/24", ...s()])).code).toBe(0);
    expect(patches().at(-1)).toEqual({ AdvertiseRoutes: ["10.77.0.0/24", "192.168.5.0/24", ...EXIT] });
    expect((await runCli(["set", "--advertise-exit-node=false", ...s()])).code).toBe(0);
    expect(patches().at(-1)).toEqual({ AdvertiseRoutes: ["10.77.0.0/24", "192.168.5.0/24"] });
    expect((await runCli(["set", "--advertise-exit-node", ...s()])).code).toBe(0);
    expect(patches().at(-1)).toEqual({ AdvertiseRoutes: ["10.77.0.0/24", "192.168.5.0/24", ...EXIT] });
    expect((await runCli(["set", "--advertise-routes=", ...s()])).code).toBe(0);
    expect(fake.state.prefs.AdvertiseRoutes).toEqual(EXIT);
    // both at once: exactly what they say
    expect((await runCli(["set", "--advertise-routes", "10.9.0.0/16", "--no-advertise-exit-node", ...s()])).code).toBe(0);
    expect(fake.state.prefs.AdvertiseRoutes).toEqual(["10.9.0.0/16"]);
  });

  it("--accept-routes, --exit-node-allow-lan-access, --snat-subnet-routes=false map to RouteAll, ExitNodeAllowLANAccess, NoSNAT", async () => {
    expect((await runCli(["set", "--accept-routes", "--exit-node-allow-lan-access", "--snat-subnet-routes=false", ...s()])).code).toBe(0);
    expect(patches().at(-1)).toEqual({ RouteAll: true, ExitNodeAllowLANAccess: true, NoSNAT: true });
    expect((await runCli(["set", "--accept-routes=false", "--exit-node-allow-lan-access=0", "--snat-subnet-routes", ...s()])).code).toBe(0);
    expect(patches().at(-1)).toEqual({ RouteAll: false, ExitNodeAllowLANAccess: false, NoSNAT: false });
    // only the flags given are read from the daemon: no status/prefs GET for plain booleans
    expect(fake.requests.filter((r) => r.method === "GET")).toHaveLength(0);
  });

  it("--snat-subnet-routes=false with an advertised exit node warns on stderr (exit traffic needs SNAT) and still applies", async () => {
    const r = await runCli(["set", "--advertise-exit-node", "--snat-subnet-routes=false", ...s()]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("Warning: --snat-subnet-routes=false applies to exit node traffic too: internet hosts will see tailnet source addresses they cannot answer.\n");
    expect(fake.state.prefs).toMatchObject({ NoSNAT: true, AdvertiseRoutes: EXIT });
  });

  it.each([
    ["bravo"], ["BRAVO"], ["bravo.tail.lattice"], ["bravo.tail.lattice."], ["100.64.0.2"], ["fd7a:115c:a1e0:0::2"],
  ])("--exit-node=%s resolves to bravo's tailnet IP; the daemon sets ExitNodeID", async (arg) => {
    offerExits();
    const r = await runCli(["set", `--exit-node=${arg}`, ...s()]);
    expect(r, r.stderr).toMatchObject({ code: 0, stderr: "" });
    expect(patches().at(-1)).toEqual({ ExitNodeIP: "100.64.0.2" });
    expect(fake.state.prefs.ExitNodeID).toBe("nbravoCNTRL");
  });

  it("a peer with HostName differing from its MagicDNS name is found by either", async () => {
    offerExits();
    peerOf("echo").DNSName = "echo-1.tail.lattice.";
    expect((await runCli(["set", "--exit-node=echo", ...s()])).code).toBe(0);
    expect((await runCli(["set", "--exit-node=echo-1", ...s()])).code).toBe(0);
    expect(patches()).toEqual([{ ExitNodeIP: "100.64.0.5" }, { ExitNodeIP: "100.64.0.5" }]);
  });

  it("a matching exit peer without a tailnet IP: exit 2 saying so", async () => {
    offerExits();
    peerOf("echo").TailscaleIPs = [];
    const r = await runCli(["set", "--exit-node=echo", ...s()]);
    expect(r).toMatchObject({ code: 2, stderr: 'lattice: invalid value "echo" for --exit-node: peer "echo" has no tailnet IP\n' });
    expect(patches()).toHaveLength(0);
  });

  it("--exit-node= (empty) clears ExitNodeIP and ExitNodeID without asking for the status", async () => {
    fake.state.prefs = { ...fake.state.prefs, ExitNodeIP: "100.64.0.2", ExitNodeID: "nbravoCNTRL" };
    for (const args of [["--exit-node="], ["--exit-node", ""]]) {
      const r = await runCli(["set", ...args, ...s()]);
      expect(r.code).toBe(0);
      expect(patches().at(-1)).toEqual({ ExitNodeIP: "" });
    }
    expect(fake.state.prefs).toMatchObject({ ExitNodeIP: "", ExitNodeID: "" });
    expect(fake.calls("/localapi/v0/status")).toHaveLength(0);
  });

  it.each([
    [["--exit-node=nope"], 'invalid value "nope" for --exit-node: no peer with that name or IP'],
    [["--exit-node=100.64.9.9"], 'invalid value "100.64.9.9" for --exit-node: no peer with that name or IP'],
    [["--exit-node=nope.tail.lattice."], 'invalid value "nope.tail.lattice." for --exit-node: no peer with that name or IP'],
    [["--exit-node=charlie"], 'invalid value "charlie" for --exit-node: peer "charlie" does not offer an exit node'],
    [["--exit-node=100.64.0.4"], 'invalid value "100.64.0.4" for --exit-node: peer "delta" does not offer an exit node'],
    [["--exit-node=alpha"], 'invalid value "alpha" for --exit-node: cannot use this node as its own exit node'],
    [["--exit-node=100.64.0.1"], 'invalid value "100.64.0.1" for --exit-node: cannot use this node as its own exit node'],
    [["--advertise-routes=10.0.0.1/24"], 'invalid value "10.0.0.1/24" for --advertise-routes: 10.0.0.1/24 has non-address bits set; expected 10.0.0.0/24'],
    [["--advertise-routes=10.0.0.0/24,bad"], 'invalid value "10.0.0.0/24,bad" for --advertise-routes: "bad" is not a valid IP address or CIDR prefix'],
    [["--advertise-routes=::/0"], 'invalid value "::/0" for --advertise-routes: ::/0 advertised without its IPv4 counterpart'],
    [["--advertise-exit-node=maybe"], 'invalid value "maybe" for --advertise-exit-node: not a boolean (true or false)'],
    [["--snat-subnet-routes=no"], 'invalid value "no" for --snat-subnet-routes: not a boolean (true or false)'],
    [["--exit-node-allow-lan-access=2"], 'invalid value "2" for --exit-node-allow-lan-access: not a boolean (true or false)'],
    // a good flag next to a bad one: nothing is sent
    [["--hostname=h2", "--advertise-exit-node", "--exit-node=charlie"], 'invalid value "charlie" for --exit-node: peer "charlie" does not offer an exit node'],
  ])("%j → exit 2, `lattice: <message>`, prefs unchanged", async (flags, msg) => {
    offerExits();
    const before: Prefs = structuredClone(fake.state.prefs);
    const r = await runCli(["set", ...flags, ...s()]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.startsWith(`lattice: ${msg}`), r.stderr).toBe(true);
    expect(patches()).toHaveLength(0);
    expect(fake.state.prefs).toEqual(before);
  });

  it("the daemon refusing a value (e.g. a peer that stopped offering meanwhile) → its message, exit 1", async () => {
    offerExits();
    fake.state.override = (req, res) => {
      if (req.method !== "PATCH") return false;
      res.writeHead(400, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: "ExitNodeIP: 100.64.0.2 is not a peer offering an exit node", code: "bad_request" }));
      return true;
    };
    const r = await runCli(["set", "--exit-node=bravo", ...s()]);
    expect(r).toMatchObject({ code: 1, stderr: "lattice: ExitNodeIP: 100.64.0.2 is not a peer offering an exit node\n" });
  });
});

describe("lattice up: routes and exit node flags → UpRequest", () => {
  it("maps every new flag; the advertise flags keep the other part of the current routes", async () => {
    offerExits();
    fake.state.prefs.AdvertiseRoutes = ["10.5.0.0/16"];
    const r = await runCli(["up", "--advertise-routes=10.77.0.0/24", "--advertise-exit-node", "--accept-routes", "--exit-node=echo",
      "--exit-node-allow-lan-access", "--snat-subnet-routes=false", ...s()]);
    expect(r.code, r.stderr).toBe(0);
    expect(upBody()).toEqual({ AdvertiseRoutes: ["10.77.0.0/24", ...EXIT], RouteAll: true, ExitNodeIP: "100.64.0.5", ExitNodeAllowLANAccess: true, NoSNAT: true });
    await runCli(["up", "--advertise-exit-node", ...s()]);
    expect(upBody()).toEqual({ AdvertiseRoutes: ["10.5.0.0/16", ...EXIT] });
  });

  it("--reset: the advertise flags say everything (nothing kept from the current prefs)", async () => {
    fake.state.prefs.AdvertiseRoutes = ["10.5.0.0/16", ...EXIT];
    await runCli(["up", "--reset", "--advertise-routes=10.77.0.0/24", ...s()]);
    expect(upBody()).toEqual({ Reset: true, AdvertiseRoutes: ["10.77.0.0/24"] });
    expect(fake.calls("/localapi/v0/prefs")).toHaveLength(0);
  });

  it("--exit-node on a node not Running yet (no netmap, no peers): says so, exit 2, no /up sent", async () => {
    fake.state.status = { ...fake.state.status, BackendState: "NeedsLogin", Peer: {} };
    const r = await runCli(["up", "--auth-key=k", "--exit-node=bravo", ...s()]);
    expect(r).toMatchObject({ code: 2, stderr: 'lattice: invalid value "bravo" for --exit-node: no peer with that name or IP (the node is NeedsLogin, its peers are not known yet: connect first, then `lattice set --exit-node`)\n' });
    expect(fake.calls("/localapi/v0/up")).toHaveLength(0);
  });

  it.each([
    [["--advertise-routes=10.77.0.1/24"], 'invalid value "10.77.0.1/24" for --advertise-routes: 10.77.0.1/24 has non-address bits set; expected 10.77.0.0/24'],
    [["--exit-node=ghost"], 'invalid value "ghost" for --exit-node: no peer with that name or IP'],
    [["--exit-node=charlie"], 'invalid value "charlie" for --exit-node: peer "charlie" does not offer an exit node'],
  ])("bad %j → exit 2, no /up sent", async (flags, msg) => {
    offerExits();
    const r = await runCli(["up", ...flags, ...s()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`lattice: ${msg}\n`);
    expect(fake.calls("/localapi/v0/up")).toHaveLength(0);
  });
});

describe("lattice exit-node list", () => {
  it("one row per peer offering an exit node, sorted by hostname, Tailscale's columns and STATUS words", async () => {
    offerExits();
    const d = peerOf("delta");
    d.ExitNodeOption = true; // offline
    peerOf("echo").ExitNode = true;
    const r = await runCli(["exit-node", "list", ...s()]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toBe([
      "IP          HOSTNAME            COUNTRY  CITY  STATUS",
      "100.64.0.2  bravo.tail.lattice  -        -     -",
      "100.64.0.4  delta.tail.lattice  -        -     offline",
      "100.64.0.5  echo.tail.lattice   -        -     selected",
      "",
    ].join("\n"));
  });

  it("a peer whose AllowedIPs carry the default routes counts even without ExitNodeOption; the selected one offline says so", async () => {
    const f = peerOf("foxtrot");
    f.AllowedIPs = [...(f.AllowedIPs ?? []), "0.0.0.0/0", "::/0"];
    f.ExitNode = true;
    f.Online = false;
    const r = await runCli(["exit-node", "list", ...s()]);
    expect(r.stdout.split("\n")[1]).toBe("100.64.0.6  foxtrot.tail.lattice  -        -     selected but offline");
  });

  it("none: `No exit nodes found.`, exit 0; --json: []", async () => {
    expect(await runCli(["exit-node", "list", ...s()])).toMatchObject({ code: 0, stdout: "No exit nodes found.\n" });
    expect(JSON.parse((await runCli(["exit-node", "list", "--json", ...s()])).stdout)).toEqual([]);
  });

  it("--json: ID, Name, TailscaleIPs, Online, Selected, Location per exit node", async () => {
    offerExits();
    peerOf("bravo").ExitNode = true;
    const r = await runCli(["exit-node", "list", "--json", ...s()]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      { ID: "nbravoCNTRL", Name: "bravo.tail.lattice", TailscaleIPs: ["100.64.0.2", "fd7a:115c:a1e0::2"], Online: true, Selected: true, Location: null },
      { ID: "nechoCNTRL", Name: "echo.tail.lattice", TailscaleIPs: ["100.64.0.5", "fd7a:115c:a1e0::5"], Online: true, Selected: false, Location: null },
    ]);
  });

  it("daemon not Running: the state message on stdout, exit 1; no subcommand: usage, exit 2", async () => {
    fake.state.status.BackendState = "Stopped";
    expect(await runCli(["exit-node", "list", ...s()])).toMatchObject({ code: 1, stdout: "Lattice is stopped.\n" });
    expect((await runCli(["exit-node", ...s()])).code).toBe(2);
  });
});

describe("lattice exit-node suggest", () => {
  it("prints the suggestion (FQDN without the trailing dot) and how to accept it", async () => {
    fake.state.suggestion = { ID: "nbravoCNTRL", Name: "bravo.tail.lattice.", Location: null };
    const r = await runCli(["exit-node", "suggest", ...s()]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toBe("Suggested exit node: bravo.tail.lattice\nTo accept this suggestion, use `lattice set --exit-node=bravo.tail.lattice`.\n");
  });

  it("none (404 no_exit_nodes): `No exit node suggestion is available.`, exit 1; other errors are reported as errors", async () => {
    expect(await runCli(["exit-node", "suggest", ...s()])).toMatchObject({ code: 1, stdout: "No exit node suggestion is available.\n", stderr: "" });
    fake.state.override = (req, res) => {
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: `no such endpoint ${req.path}`, code: "not_found" }));
      return true;
    };
    expect(await runCli(["exit-node", "suggest", ...s()])).toMatchObject({ code: 1, stdout: "", stderr: "lattice: no such endpoint /localapi/v0/suggest-exit-node\n" });
  });
});

describe("lattice status: exit node words in the status column (PROTOCOLS.md Text status)", () => {
  it("`idle; offers exit node`, `active; exit node; direct IP:PORT`, `idle; exit node; offline, last seen …`", async () => {
    peerOf("echo").ExitNodeOption = true;
    const b = peerOf("bravo");
    b.ExitNodeOption = true;
    b.ExitNode = true;
    const c = peerOf("charlie");
    c.ExitNodeOption = true; // relayed, active, offering
    const d = peerOf("delta");
    d.ExitNode = true;
    const r = await runCli(["status", ...s()]);
    const col = (host: string): string => r.stdout.split("\n").find((l) => l.split(/\s+/)[1] === host)!.split(/\s{2,}/).at(-1)!;
    expect(col("echo")).toBe("idle; offers exit node");
    expect(col("bravo")).toBe("active; exit node; direct 192.0.2.7:41641, tx 1234 rx 5678");
    expect(col("charlie")).toBe('active; offers exit node; relay "nyc", tx 10 rx 20');
    expect(col("delta")).toBe("idle; exit node; offline, last seen 3h ago");
  });
});
