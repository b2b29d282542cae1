/**
 * Issue 10, the control server's side, against a real server process (SQLite:
 * dns.sqlite.test.ts, PostgreSQL: dns.postgres.test.ts): DNS settings through the CLI and
 * the REST API (stored, audited, logged, refused with field and position, never
 * half-written), DNSConfig deltas and renamed nodes on connected map streams,
 * `nodes routes --approve`, and autoApprovers for routes advertised on a map request.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, TestNode, waitFor, type ServerProc } from "./harness.js";

const ALLOW_ALL = `{ "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:*"] }] }`;

/** Reads messages from a map stream until `pick` returns something; fails after `ms` or when the stream ends. */
async function until<T>(it: AsyncIterator<any>, pick: (m: any) => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no matching map response within ${ms} ms`)), Math.max(0, end - Date.now()))));
    const r = await Promise.race([it.next(), timeout]).finally(() => clearTimeout(timer));
    if (r.done) throw new Error("map stream ended");
    const v = pick(r.value);
    if (v !== undefined) return v;
  }
}

/** Defines the suite; `db(name)` gives a database location (undefined = SQLite in the temp dir). */
export function dnsSuite(label: string, db: (name: string) => Promise<string | undefined>, teardown: () => void = () => {}): void {
  describe(`DNS settings and routes on the control server (${label})`, () => {
    let s: ServerProc;
    let apiKey: string;
    let authKey: string;
    const nodes: TestNode[] = [];
    const streams: AsyncIterator<any>[] = [];
    const join_ = async (host: string, hostinfo: Record<string, unknown> = {}) => {
      const n = await new TestNode(s.url, host).connect();
      nodes.push(n);
      const r = await n.register({ Auth: { AuthKey: authKey }, Hostinfo: { Hostname: host, OS: "linux", ...hostinfo } } as never);
      expect(r.MachineAuthorized).toBe(true);
      return n;
    };
    const stream = (n: TestNode, extra: Record<string, unknown> = {}) => {
      const it = n.map(extra as never)[Symbol.asyncIterator]();
      streams.push(it);
      return it;
    };
    const file = (name: string, text: string) => {
      const f = join(s.dir, name);
      writeFileSync(f, text);
      return f;
    };
    const getDns = async () => JSON.parse((await s.cli(["dns", "get"])).stdout);

    beforeAll(async () => {
      s = await startServer({ db: await db("dns"), env: { LATTICE_CONTROL_LOG_LEVEL: "info" } });
      expect((await s.cli(["users", "create", "alice", "--password", "correct horse"])).code).toBe(0);
      expect((await s.cli(["policy", "set", file("allow.hujson", ALLOW_ALL)])).code).toBe(0);
      apiKey = (await s.cli(["apikeys", "create", "--description", "dns tests"])).stdout.trim();
      authKey = (await s.cli(["keys", "create", "--user", "alice", "--reusable", "--preapproved"])).stdout.trim();
    }, 60_000);

    afterAll(async () => {
      for (const it of streams) await it.return?.().catch(() => {});
      for (const n of nodes) n.close();
      await s?.stop();
      teardown();
    });

    it("dns get prints the defaults; dns set takes huJSON, prints one line, and is stored, audited and logged", async () => {
      expect(await getDns()).toEqual({
        tailnetDomain: "lattice.internal",
        nameservers: [],
        splitDNS: {},
        searchPaths: [],
        preferences: { magicDNS: true, overrideLocalDNS: false },
      });
      const f = file(
        "dns.hujson",
        `// office DNS
        {
          "nameservers": ["1.1.1.1", {"address": "2606:4700:4700::1111", "useWithExitNode": true}],
          "splitDNS": {"office.example": [{"address": "10.77.0.53"}], "lab.example": []},
          "searchPaths": ["office.example"],
          "preferences": {"magicDNS": true, "overrideLocalDNS": true}, // trailing comma below
        }`,
      );
      const set = await s.cli(["dns", "set", f]);
      expect(set.stderr).toBe("");
      expect(set.code).toBe(0);
      expect(set.stdout).toBe("DNS settings updated: domain lattice.internal, MagicDNS on, 2 nameservers (override local DNS), 2 split DNS domains, 1 search path\n");
      const want = {
        tailnetDomain: "lattice.internal",
        nameservers: [{ address: "1.1.1.1" }, { address: "2606:4700:4700::1111", useWithExitNode: true }],
        splitDNS: { "office.example": [{ address: "10.77.0.53" }], "lab.example": [] },
        searchPaths: ["office.example"],
        preferences: { magicDNS: true, overrideLocalDNS: true },
      };
      expect(await getDns()).toEqual(want);
      expect((await s.cli(["dns", "get", "--json"])).stdout).toBe(`${JSON.stringify(want, null, 2)}\n`);
      expect((await s.api("GET", "/dns", undefined, apiKey)).json).toEqual(want);
      // `dns get` output is a valid `dns set` input (stdin), and changes nothing.
      const again = await s.cli(["dns", "set", "-"], JSON.stringify(want));
      expect(again.code).toBe(0);
      expect(await getDns()).toEqual(want);
      const audit = (await s.cli(["audit", "--json"])).stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((e) => e.action === "dns.set");
      expect(audit).toHaveLength(2);
      expect(audit[0]).toMatchObject({ actor: "admin-socket", target: "lattice.internal" });
      expect(audit[0].details.diff).toMatch(/^\+\s+"address": "1\.1\.1\.1"$/m);
      expect(audit[0].details.diff).toMatch(/^-\s+"nameservers": \[\],$/m);
      expect(audit[1].details.diff).toBe("");
      await waitFor(() => (s.stdout().match(/"action":"dns.set"/g) ?? []).length === 2);
    });

    it("bad input gets 400 naming field, value and position, the CLI exits non-zero, and nothing is written", async () => {
      const before = await getDns();
      const cli = await s.cli(["dns", "set", file("bad.json", `{"tailnetDomain": "new.example", "splitDNS": {"corp.example": ["10.0.0.1", "10.0.0.x"]}}`)]);
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toBe('error: invalid DNS settings: splitDNS["corp.example"][1]: "10.0.0.x" is not an IP address\n');
      const syntax = await s.cli(["dns", "set", file("syntax.json", `{\n  "nameservers": ["1.1.1.1"\n}`)]);
      expect(syntax.code).not.toBe(0);
      expect(syntax.stderr).toMatch(/^error: DNS settings are not valid JSON\/huJSON: CommaExpected at 3:1\n$/);
      const missing = await s.cli(["dns", "set", join(s.dir, "nope.json")]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain("cannot read DNS settings file");
      const huge = await s.cli(["dns", "set", file("huge.json", `{"searchPaths": [${Array(200_000).fill('"a.example"').join(",")}]}`)]);
      expect(huge.code).not.toBe(0);
      expect(huge.stderr).toMatch(/^error: DNS settings file \S+huge\.json is larger than 1048576 bytes \(1 MiB\), the most the server accepts\n$/);
      const cases: [unknown, string, string][] = [
        ["{not json", "bad_json", "body is not valid JSON"],
        ["", "bad_json", "body: empty"],
        [JSON.stringify({ nameservers: "1.1.1.1" }), "dns_invalid", "nameservers: expected an array of resolvers, got string"],
        [JSON.stringify({ preferences: { magicDNS: 1 } }), "dns_invalid", "preferences.magicDNS: expected a boolean, got number"],
        [JSON.stringify({ nameservers: [{ address: "https://dns.example/dns-query" }] }), "dns_invalid", "nameservers[0].address"],
        [JSON.stringify({ nameservers: Array.from({ length: 50_000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`) }), "dns_invalid", "nameservers: 50000 resolvers; at most 16"],
        [JSON.stringify({ splitDNS: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`d${i}.example`, []])) }), "dns_invalid", "splitDNS: 20000 domains; at most 256"],
        [JSON.stringify({ splitDNS: { "x.lattice.internal": ["10.0.0.1"] } }), "dns_invalid", 'splitDNS["x.lattice.internal"]: is the tailnet domain'],
        [JSON.stringify([1, 2]), "dns_invalid", "dns: expected an object, got array"],
        ["[".repeat(100_000), "bad_json", ""],
      ];
      for (const [raw, code, msg] of cases) {
        const r = await s.api("PUT", "/dns", undefined, apiKey, raw as string);
        expect(r.status, String(raw).slice(0, 60)).toBe(400);
        expect(r.json.error.code).toBe(code);
        expect(r.json.error.message).toContain(msg);
      }
      // huJSON as raw text over REST, deeply nested: refused, not a stack overflow (500).
      const deep = await fetch(`${s.url}/api/v1/dns`, { method: "PUT", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/hujson" }, body: "[".repeat(200_000) });
      expect(deep.status).toBe(400);
      expect(((await deep.json()) as any).error.message).toContain("nested deeper than 16 levels");
      const big = await s.api("PUT", "/dns", undefined, apiKey, `{"searchPaths": ["${"a".repeat(2 << 20)}"]}`);
      expect(big.status).toBe(413);
      expect(await getDns()).toEqual(before);
      expect(s.stdout()).not.toMatch(/internal server error|"level":50/);
    });

    it("a DNS change reaches connected map streams as a DNSConfig delta within 1 s; a new tailnet domain renames every node", async () => {
      const a = await join_("dns-a");
      await join_("dns-b");
      const sa = stream(a);
      const full = (await sa.next()).value;
      expect(full.DNSConfig.Resolvers).toEqual([{ Addr: "1.1.1.1" }, { Addr: "2606:4700:4700::1111", UseWithExitNode: true }]);
      expect(full.DNSConfig.Routes).toEqual({ "office.example.": [{ Addr: "10.77.0.53" }], "lab.example.": [] });
      expect(full.DNSConfig.Domains).toEqual(["lattice.internal", "office.example"]);
      const bId = full.Peers.find((p: any) => p.Name === "dns-b.lattice.internal.").ID;

      let t0 = Date.now();
      const put = await s.api("PUT", "/dns", { nameservers: ["9.9.9.9"], splitDNS: { "corp.example": ["100.64.0.53"] }, preferences: { magicDNS: true, overrideLocalDNS: true } }, apiKey);
      expect(put.status).toBe(200);
      const delta = await until(sa, (m) => m.DNSConfig);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(delta).toEqual({ Resolvers: [{ Addr: "9.9.9.9" }], Routes: { "corp.example.": [{ Addr: "100.64.0.53" }] }, Domains: ["lattice.internal"], Proxied: true });

      t0 = Date.now();
      expect((await s.cli(["dns", "set", "-"], `{"tailnetDomain": "corp.lattice", "preferences": {"magicDNS": false}}`)).code).toBe(0);
      const seen = { dns: null as any, domain: "", self: "", peer: "" };
      await until(sa, (m) => {
        if (m.DNSConfig) seen.dns = m.DNSConfig;
        if (m.Domain) seen.domain = m.Domain;
        if (m.Node) seen.self = m.Node.Name;
        const p = (m.PeersChanged ?? []).find((x: any) => x.ID === bId);
        if (p) seen.peer = p.Name;
        return seen.dns && seen.self && seen.peer ? true : undefined;
      });
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(seen).toEqual({ dns: { Resolvers: [], Domains: [], Proxied: false }, domain: "corp.lattice", self: "dns-a.corp.lattice.", peer: "dns-b.corp.lattice." });
      // Nodes are found by their new FQDN; a new stream gets the new names in full.
      expect(JSON.parse((await s.cli(["nodes", "show", "dns-b.corp.lattice", "--json"])).stdout).name).toBe("dns-b");
      const b2 = stream(nodes[nodes.length - 1]!);
      const fullB = (await b2.next()).value;
      expect(fullB.Node.Name).toBe("dns-b.corp.lattice.");
      expect(fullB.Domain).toBe("corp.lattice");
      expect(fullB.DNSConfig.Proxied).toBe(false);
      // Back to the default domain for the tests that follow.
      expect((await s.cli(["dns", "set", "-"], `{"tailnetDomain": "lattice.internal"}`)).code).toBe(0);
    });

    it("nodes routes NODE --approve approves advertised routes (added) and prints the table", async () => {
      await join_("rt", { RoutableIPs: ["10.77.0.0/24", "10.78.0.0/24", "0.0.0.0/0", "::/0"] });
      const r = await s.cli(["nodes", "routes", "rt", "--approve", "10.77.0.0/24,0.0.0.0/0"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^ROUTE\s+STATE$/m);
      expect(r.stdout).toMatch(/^10\.77\.0\.0\/24\s+approved$/m);
      expect(r.stdout).toMatch(/^10\.78\.0\.0\/24\s+pending$/m);
      expect(r.stdout).toMatch(/^exit node \(0\.0\.0\.0\/0, ::\/0\)\s+approved$/m);
      const more = await s.cli(["nodes", "routes", "rt", "--approve", "10.78.0.0/24", "--json"]);
      expect(JSON.parse(more.stdout).approvedRoutes).toEqual(["0.0.0.0/0", "10.77.0.0/24", "10.78.0.0/24", "::/0"]);
      const bad = await s.cli(["nodes", "routes", "rt", "--approve", "10.99.0.0/24"]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('routes[0]: "10.99.0.0/24"');
      const empty = await s.cli(["nodes", "routes", "rt", "--approve", ""]);
      expect(empty.code).not.toBe(0);
      expect(empty.stderr).toContain('invalid value "" for --approve');
      // approve-routes is still there.
      expect((await s.cli(["nodes", "approve-routes", "rt", "10.77.0.0/24", "--remove"])).code).toBe(0);
      expect(JSON.parse((await s.cli(["nodes", "routes", "rt", "--json"])).stdout).approvedRoutes).toEqual(["0.0.0.0/0", "10.78.0.0/24", "::/0"]);
    });

    it("autoApprovers approve routes and exit nodes a connected node starts advertising in a map request; peers get them", async () => {
      const policy = `{
        "autoApprovers": { "routes": { "10.88.0.0/16": ["alice@"] }, "exitNode": ["alice@"] },
        "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:*"] }],
      }`;
      expect((await s.cli(["policy", "set", file("auto.hujson", policy)])).code).toBe(0);
      const router = await join_("auto-rt");
      const viewer = await join_("auto-viewer");
      const sv = stream(viewer);
      const full = (await sv.next()).value;
      const rId = full.Peers.find((p: any) => p.Name.startsWith("auto-rt.")).ID;
      // Registered without routes; now it advertises them in a map request (as after `lattice set --advertise-routes`).
      const sr = stream(router, { Hostinfo: { Hostname: "auto-rt", OS: "linux", RoutableIPs: ["10.88.1.0/24", "10.99.0.0/24", "0.0.0.0/0", "::/0"] } });
      await sr.next();
      await waitFor(async () => {
        const n = JSON.parse((await s.cli(["nodes", "routes", "auto-rt", "--json"])).stdout);
        return n.approvedRoutes.join(",") === "0.0.0.0/0,10.88.1.0/24,::/0";
      });
      const peer = await until(sv, (m) => (m.PeersChanged ?? []).find((p: any) => p.ID === rId && p.AllowedIPs?.includes("10.88.1.0/24")));
      expect(peer.AllowedIPs).toEqual(expect.arrayContaining(["0.0.0.0/0", "::/0", "10.88.1.0/24"]));
      expect(peer.AllowedIPs).not.toContain("10.99.0.0/24");
      expect(peer.PrimaryRoutes).toContain("10.88.1.0/24");
      expect((await s.cli(["policy", "set", file("allow2.hujson", ALLOW_ALL)])).code).toBe(0);
    });
  });
}
