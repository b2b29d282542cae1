import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "./harness.js";
import type { DnsStatus } from "../src/types.js";

let dir = "";
let server: Server;
let answer: DnsStatus;
const paths: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "lattice-dns-cli-"));
  answer = {
    MagicDNS: true, Domain: "tail.example", Mode: "resolved", ResolvConf: "/etc/resolv.conf", Resolvers: ["10.0.0.1"],
    Routes: { "office.example": ["100.64.0.2"], "lab.example": [] }, SearchDomains: ["tail.example"], Nameservers: ["100.100.100.100", "fd7a:115c:a1e0::53"],
  };
  server = createServer((req, res) => {
    paths.push(`${req.method} ${req.url}`);
    const body = JSON.stringify(answer);
    res.writeHead(req.url === "/localapi/v0/dns-status" ? 200 : 404, { "Content-Type": "application/json" });
    res.end(req.url === "/localapi/v0/dns-status" ? body : '{"error":"no","code":"not_found"}');
  });
  await new Promise<void>((r) => server.listen(join(dir, "s.sock"), r));
});
afterEach(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
  paths.length = 0;
});

describe("lattice dns status", () => {
  it("text: MagicDNS, domain, mode + file, nameservers, search domains, resolvers, split routes (sorted)", async () => {
    const r = await runCli(["dns", "status", "--socket", join(dir, "s.sock")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      "MagicDNS: enabled\nTailnet domain: tail.example\nMode: resolved (/etc/resolv.conf)\n" +
        "Nameservers given to the host: 100.100.100.100 fd7a:115c:a1e0::53\nSearch domains: tail.example\nResolvers: 10.0.0.1\n" +
        "Split DNS routes:\n  lab.example -> (MagicDNS)\n  office.example -> 100.64.0.2\n",
    );
    expect(paths).toEqual(["GET /localapi/v0/dns-status"]);
  });

  it("off: no file, (none) for empty lists", async () => {
    answer = { MagicDNS: false, Domain: "", Mode: "off", ResolvConf: "/etc/resolv.conf", Resolvers: [], Routes: {}, SearchDomains: [], Nameservers: [] };
    const r = await runCli(["dns", "status", "--socket", join(dir, "s.sock")]);
    expect(r.stdout).toBe(
      "MagicDNS: disabled\nTailnet domain: (none)\nMode: off\nNameservers given to the host: (none)\nSearch domains: (none)\nResolvers: (none)\nSplit DNS routes: (none)\n",
    );
  });

  it("--json prints the LocalAPI object; Go-style --json=true works", async () => {
    for (const flag of ["--json", "--json=true"]) {
      const r = await runCli(["dns", "status", flag, "--socket", join(dir, "s.sock")]);
      expect(JSON.parse(r.stdout)).toEqual(answer);
    }
  });

  it("daemon not running → exit 1 with the usual message", async () => {
    const r = await runCli(["dns", "status", "--socket", join(dir, "nope.sock")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed to connect to local latticed/);
  });
});
