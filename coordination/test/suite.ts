/**
 * The coordination server's integration suite, run against a real server process with
 * SQLite (control.sqlite.test.ts) and PostgreSQL (control.postgres.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { dbUpdate, startServer, TestNode, waitFor, webLogin, type ServerProc } from "./harness.js";

const TAG_POLICY = `// test policy
{
  "tagOwners": { "tag:server": ["alice@"], "tag:prod": ["group:ops"] },
  "groups": { "group:ops": ["bob@"] },
  "acls": [
    { "action": "accept", "src": ["*"], "dst": ["*:*"] },
  ],
}
`;

/** Defines the suite; `db(name)` gives a database location (undefined = SQLite in the temp dir). */
export function controlSuite(label: string, db: (name: string) => Promise<string | undefined>, teardown: () => void = () => {}): void {
  describe(`lattice-control (${label})`, () => {
    let s: ServerProc;
    let apiKey: string;
    const nodes: TestNode[] = [];
    const node = async (host: string) => {
      const n = await new TestNode(s.url, host).connect();
      nodes.push(n);
      return n;
    };
    const key = async (...args: string[]) => {
      const r = await s.cli(["keys", "create", ...args]);
      // The key alone on stdout; one summary line on stderr (issue 11).
      expect(r.stderr).toMatch(/^created auth key [0-9a-f]{12} \(.*\)\n$/);
      expect(r.code).toBe(0);
      return r.stdout.trim();
    };
    const listNodes = async () => JSON.parse((await s.cli(["nodes", "list", "--json"])).stdout) as any[];

    beforeAll(async () => {
      s = await startServer({
        db: await db("suite"),
        env: { LATTICE_CONTROL_SWEEP_INTERVAL: "200ms", LATTICE_CONTROL_EPHEMERAL_TIMEOUT: "1s" },
      });
      expect((await s.cli(["users", "create", "alice", "--password", "correct horse"])).code).toBe(0);
      expect((await s.cli(["users", "create", "bob", "--password-stdin"], "battery staple\n")).code).toBe(0);
      apiKey = (await s.cli(["apikeys", "create", "--description", "tests"])).stdout.trim();
      expect(apiKey).toMatch(/^lapi-/);
    }, 60_000);

    afterAll(async () => {
      for (const n of nodes) n.close();
      await s?.stop();
      teardown();
    });

    it("prints the server URL and how to create the first auth key", () => {
      expect(s.stdout()).toContain(`server URL: ${s.url}`);
      expect(s.stdout()).toContain("keys create");
    });

    it("manages users from the CLI; duplicates and unknown users fail with a message", async () => {
      const list = await s.cli(["users", "list", "--json"]);
      expect(JSON.parse(list.stdout).map((u: any) => u.name)).toEqual(["alice", "bob"]);
      const dup = await s.cli(["users", "create", "alice"]);
      expect(dup.code).not.toBe(0);
      expect(dup.stderr).toMatch(/already exists/);
      expect((await s.cli(["users", "create", "carol"])).code).toBe(0);
      expect((await s.cli(["users", "delete", "carol"])).code).toBe(0);
      const gone = await s.cli(["users", "delete", "carol"]);
      expect(gone.code).not.toBe(0);
      expect(gone.stderr).toMatch(/not found/);
    });

    it("registers with a pre-approved single-use key; the key cannot be reused", async () => {
      const k = await key("--user", "alice", "--preapproved");
      expect(k).toMatch(/^lkey-[0-9a-f]{12}-/);
      const a = await node("web-1");
      const r = await a.register({ Auth: { AuthKey: k } });
      expect(r.MachineAuthorized).toBe(true);
      expect(r.Login.LoginName).toContain("alice");
      const b = await node("web-2");
      await expect(b.register({ Auth: { AuthKey: k } })).rejects.toMatchObject({ status: 401, code: "auth_key_used" });
      const listed = (await listNodes()).find((n) => n.hostname === "web-1");
      expect(listed.user).toBe("alice");
      expect(listed.ipv4).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./);
      expect(listed.ipv6).toMatch(/^fd7a:115c:a1e0:/);
      expect(Date.parse(listed.keyExpiry) - Date.now()).toBeGreaterThan(179 * 86400_000);
      // The stored key is hashed: the secret never appears in the listing.
      expect((await s.cli(["keys", "list", "--json"])).stdout).not.toContain(k.split("-").slice(2).join("-"));
    });

    it("a reusable key registers several nodes with unique names and stable addresses", async () => {
      const k = await key("--user", "bob", "--reusable", "--preapproved");
      const a = await node("db");
      const b = await node("db");
      expect((await a.register({ Auth: { AuthKey: k } })).MachineAuthorized).toBe(true);
      expect((await b.register({ Auth: { AuthKey: k } })).MachineAuthorized).toBe(true);
      const dbs = (await listNodes()).filter((n) => n.hostname === "db");
      expect(dbs.map((n) => n.name).sort()).toEqual(["db", "db-1"]);
      const before = dbs.find((n) => n.name === "db")!;
      // Re-authentication with a new node key keeps the addresses and rotates the key.
      const again = await new TestNode(s.url, "db");
      Object.assign(again, { machine: a.machine });
      await again.connect();
      nodes.push(again);
      const r = await again.register({ Auth: { AuthKey: k } });
      expect(r.MachineAuthorized).toBe(true);
      const after = (await listNodes()).find((n) => n.id === before.id)!;
      expect(after.ipv4).toBe(before.ipv4);
      expect(after.ipv6).toBe(before.ipv6);
      expect(after.nodeKey).toBe(again.nodeKey);
      expect(after.nodeKey).not.toBe(before.nodeKey);
    });

    it("a key that is not pre-approved needs admin approval before the map is served", async () => {
      const k = await key("--user", "alice");
      const n = await node("needs-approval");
      const r = await n.register({ Auth: { AuthKey: k } });
      expect(r.MachineAuthorized).toBe(false);
      const it1 = n.map()[Symbol.asyncIterator]();
      await expect(it1.next()).rejects.toMatchObject({ status: 403, code: "machine_not_authorized" });
      const ok = await s.cli(["nodes", "approve", "needs-approval"]);
      expect(ok.code).toBe(0);
      const it2 = n.map()[Symbol.asyncIterator]();
      const first = await it2.next();
      expect(first.value.Node.Name).toBe("needs-approval.lattice.internal.");
      expect(first.value.Node.MachineAuthorized).toBe(true);
      await it2.return!();
    });

    it("tags need tagOwners; tagged nodes are not owned and do not expire", async () => {
      const no = await s.cli(["keys", "create", "--tags", "tag:server"]);
      expect(no.code).not.toBe(0);
      expect(no.stderr).toMatch(/tag:server.*tagOwners/);
      const f = join(s.dir, "tags.hujson");
      writeFileSync(f, TAG_POLICY);
      expect((await s.cli(["policy", "set", f])).code).toBe(0);
      // alice does not own tag:prod (only group:ops = bob does).
      const notOwner = await s.cli(["keys", "create", "--user", "alice", "--tags", "tag:prod"]);
      expect(notOwner.code).not.toBe(0);
      expect(notOwner.stderr).toMatch(/not an owner of "tag:prod"/);
      const k = await key("--user", "bob", "--tags", "tag:prod", "--preapproved");
      const n = await node("prod-1");
      expect((await n.register({ Auth: { AuthKey: k } })).MachineAuthorized).toBe(true);
      const listed = (await listNodes()).find((x) => x.hostname === "prod-1");
      expect(listed.tags).toEqual(["tag:prod"]);
      expect(listed.user).toBeNull();
      expect(listed.keyExpiry).toBeNull();
      // Admin re-tagging checks the policy too.
      const bad = await s.cli(["nodes", "tag", "prod-1", "tag:nope"]);
      expect(bad.code).not.toBe(0);
      const good = await s.cli(["nodes", "tag", "prod-1", "tag:server,tag:prod"]);
      expect(good.code).toBe(0);
      expect(good.stdout).toContain("tag:prod,tag:server");
    });

    it("expired and revoked keys are rejected with clear errors", async () => {
      const expired = await key("--user", "alice", "--reusable", "--preapproved", "--expiry", "24h");
      const revoked = await key("--user", "alice", "--reusable", "--preapproved");
      const prefix = expired.split("-")[1]!;
      expect(await dbUpdate(s.db, "auth_keys", { expires_at: Date.now() - 1000 }, ["prefix", prefix])).toBe(1);
      const n = await node("late");
      await expect(n.register({ Auth: { AuthKey: expired } })).rejects.toMatchObject({ status: 401, code: "auth_key_expired" });
      expect((await s.cli(["keys", "revoke", revoked.split("-")[1]!])).code).toBe(0);
      await expect(n.register({ Auth: { AuthKey: revoked } })).rejects.toMatchObject({ status: 401, code: "auth_key_revoked" });
      await expect(n.register({ Auth: { AuthKey: "lkey-000000000000-AAAAAAAAAAAAAAAAAAAAAAAA" } })).rejects.toMatchObject({ status: 401, code: "auth_key_invalid" });
      const tooShort = await s.cli(["keys", "create", "--user", "alice", "--expiry", "1h"]);
      expect(tooShort.code).not.toBe(0);
      expect(tooShort.stderr).toMatch(/expiry: must be between 1 day/);
      const tooLong = await s.cli(["keys", "create", "--user", "alice", "--expiry", "91d"]);
      expect(tooLong.code).not.toBe(0);
    });

    it("admin expire ends the node's map stream; disable-expiry clears the expiry", async () => {
      const k = await key("--user", "alice", "--preapproved");
      const n = await node("expiring");
      await n.register({ Auth: { AuthKey: k } });
      const stream = n.map()[Symbol.asyncIterator]();
      expect((await stream.next()).value.Node.Expired).toBeUndefined();
      expect((await s.cli(["nodes", "expire", "expiring"])).code).toBe(0);
      // The stream is closed by the server (disconnect); drain until it ends.
      await waitFor(async () => (await stream.next().catch(() => ({ done: true }))).done, 5000, 0);
      const again = n.map()[Symbol.asyncIterator]();
      await expect(again.next()).rejects.toMatchObject({ status: 401, code: "node_key_expired" });
      const reg = await n.register({});
      expect(reg.NodeKeyExpired || reg.AuthURL !== "").toBe(true);
      expect((await s.cli(["nodes", "disable-expiry", "expiring"])).code).toBe(0);
      const listed = (await listNodes()).find((x) => x.name === "expiring");
      expect(listed.expiryDisabled).toBe(true);
      expect(listed.keyExpiry).toBeNull();
      expect(listed.expired).toBe(false);
    });

    it("deletes ephemeral nodes after they stay offline for the configured time", async () => {
      const k = await key("--user", "alice", "--ephemeral", "--preapproved");
      const n = await node("eph");
      await n.register({ Auth: { AuthKey: k } });
      const stream = n.map()[Symbol.asyncIterator]();
      await stream.next();
      expect((await listNodes()).find((x) => x.name === "eph")?.online).toBe(true);
      await new Promise((r) => setTimeout(r, 1500));
      expect((await listNodes()).find((x) => x.name === "eph")).toBeDefined(); // online: kept
      await stream.return!();
      await waitFor(async () => !(await listNodes()).some((x) => x.name === "eph"), 6000, 200);
    });

    it("rename, delete, and nodes list", async () => {
      const k = await key("--user", "alice", "--preapproved");
      const n = await node("Old Name!");
      await n.register({ Auth: { AuthKey: k } });
      expect((await listNodes()).some((x) => x.name === "old-name")).toBe(true);
      expect((await s.cli(["nodes", "rename", "old-name", "new-name"])).code).toBe(0);
      const clash = await s.cli(["nodes", "rename", "new-name", "web-1"]);
      expect(clash.code).not.toBe(0);
      expect(clash.stderr).toMatch(/already used/);
      const bad = await s.cli(["nodes", "rename", "new-name", "Bad_Name"]);
      expect(bad.code).not.toBe(0);
      const table = await s.cli(["nodes", "list"]);
      expect(table.stdout).toMatch(/new-name\s+100\./);
      expect((await s.cli(["nodes", "delete", "new-name"])).code).toBe(0);
      expect((await listNodes()).some((x) => x.name === "new-name")).toBe(false);
    });

    it("policy get/set/check; an invalid policy is rejected with line:column", async () => {
      const bad = join(s.dir, "bad.hujson");
      writeFileSync(bad, `{\n  "acls": [\n    {"action": "accept", "src": ["*"], "dst": ["nosuchhost:22"]},\n  ],\n}\n`);
      const check = await s.cli(["policy", "check", bad]);
      expect(check.code).not.toBe(0);
      expect(check.stderr).toMatch(/\b3:\d+\b/);
      const set = await s.cli(["policy", "set", bad]);
      expect(set.code).not.toBe(0);
      const rest = await s.api("PUT", "/policy", { policy: "{ \"acls\": [ {\"action\": \"deny\"} ] }" }, apiKey);
      expect(rest.status).toBe(400);
      expect(rest.json.error.code).toBe("policy_invalid");
      expect(rest.json.error.message).toMatch(/1:\d+/);
      const got = await s.cli(["policy", "get"]);
      expect(got.stdout).toContain("tag:server"); // unchanged by the rejected ones
      const good = join(s.dir, "good.hujson");
      writeFileSync(good, TAG_POLICY.replace("test policy", "version two"));
      expect((await s.cli(["policy", "check", good])).stdout).toContain("valid");
      expect((await s.cli(["policy", "set", good])).code).toBe(0);
      expect((await s.api("GET", "/policy", undefined, apiKey)).json.policy).toContain("version two");
    });

    it("a policy update reaches connected map streams within 1 s", async () => {
      const k = await key("--user", "alice", "--reusable", "--preapproved");
      const a = await node("stream-a");
      const b = await node("stream-b");
      await a.register({ Auth: { AuthKey: k } });
      await b.register({ Auth: { AuthKey: k } });
      const sa = a.map()[Symbol.asyncIterator]();
      const full = (await sa.next()).value;
      expect(full.PacketFilter?.length ?? 0).toBeGreaterThan(0);
      const deny = `{ "tagOwners": { "tag:server": ["alice@"], "tag:prod": ["group:ops"] }, "groups": { "group:ops": ["bob@"] }, "acls": [] }`;
      const t0 = Date.now();
      expect((await s.api("PUT", "/policy", { policy: deny }, apiKey)).status).toBe(200);
      for (;;) {
        const m = (await sa.next()).value;
        if (m.PacketFilter !== undefined || m.PacketFilters !== undefined) {
          expect(Date.now() - t0).toBeLessThan(1000);
          expect(m.PacketFilter ?? []).toEqual([]);
          break;
        }
      }
      await sa.return!();
      // restore allow-all for later tests
      expect((await s.api("PUT", "/policy", { policy: TAG_POLICY }, apiKey)).status).toBe(200);
    });

    it("a node joining, changing endpoints and leaving reaches connected peers' streams", async () => {
      const k = await key("--user", "alice", "--reusable", "--preapproved");
      const a = await node("peer-a");
      await a.register({ Auth: { AuthKey: k } });
      const sa = a.map()[Symbol.asyncIterator]();
      const full = (await sa.next()).value;
      expect(full.Node.Name).toBe("peer-a.lattice.internal.");
      const b = await node("peer-b");
      const t0 = Date.now();
      await b.register({ Auth: { AuthKey: k } });
      let bId = 0;
      for (;;) {
        const m = (await sa.next()).value;
        const added = (m.PeersChanged ?? m.Peers ?? []).find((p: any) => p.Name === "peer-b.lattice.internal.");
        if (added) {
          bId = added.ID;
          expect(Date.now() - t0).toBeLessThan(1000);
          break;
        }
      }
      // B opens its stream with endpoints: A sees them (patch or full peer).
      const sb = b.map({ Endpoints: ["198.51.100.7:41641"] })[Symbol.asyncIterator]();
      await sb.next();
      for (;;) {
        const m = (await sa.next()).value;
        const patch = (m.PeersChangedPatch ?? []).find((p: any) => p.NodeID === bId && p.Endpoints);
        const peer = (m.PeersChanged ?? []).find((p: any) => p.ID === bId && p.Endpoints?.length);
        if (patch || peer) {
          expect((patch ?? peer).Endpoints).toContain("198.51.100.7:41641");
          break;
        }
      }
      await sb.return!();
      expect((await s.cli(["nodes", "delete", "peer-b"])).code).toBe(0);
      for (;;) {
        const m = (await sa.next()).value;
        if ((m.PeersRemoved ?? []).includes(bId)) break;
      }
      await sa.return!();
    });

    it("logout expires the node key; key rotation keeps the node", async () => {
      const k = await key("--user", "alice", "--preapproved");
      const n = await node("rotator");
      await n.register({ Auth: { AuthKey: k } });
      const before = (await listNodes()).find((x) => x.name === "rotator");
      const oldKey = n.nodeKey;
      const fresh = new TestNode(s.url, "x").nodeKey;
      const r = await n.register({ NodeKey: fresh, OldNodeKey: oldKey });
      expect(r.MachineAuthorized).toBe(true);
      expect(r.AuthURL).toBe("");
      n.nodeKey = fresh;
      const after = (await listNodes()).find((x) => x.id === before.id);
      expect(after.nodeKey).toBe(fresh);
      expect(after.ipv4).toBe(before.ipv4);
      const out = await n.register({ Expiry: new Date(Date.now() - 1000).toISOString() });
      expect(out.NodeKeyExpired).toBe(true);
      const listed = (await listNodes()).find((x) => x.id === before.id);
      expect(listed.expired).toBe(true);
      await expect(n.map()[Symbol.asyncIterator]().next()).rejects.toMatchObject({ status: 401, code: "node_key_expired" });
    });

    it("subnet routes: advertised by the node, approved by the admin, visible to peers", async () => {
      const k = await key("--user", "alice", "--reusable", "--preapproved");
      const router = await node("router");
      const viewer = await node("viewer");
      await router.register({ Auth: { AuthKey: k }, Hostinfo: { Hostname: "router", RoutableIPs: ["10.33.0.0/16"] } });
      await viewer.register({ Auth: { AuthKey: k } });
      const sv = viewer.map()[Symbol.asyncIterator]();
      const full = (await sv.next()).value;
      const r0 = (full.Peers ?? []).find((p: any) => p.Name === "router.lattice.internal.");
      expect(r0.AllowedIPs).not.toContain("10.33.0.0/16");
      const bad = await s.cli(["nodes", "approve-routes", "router", "10.33.0.1/16"]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/host bits/);
      const ok = await s.cli(["nodes", "approve-routes", "router", "10.33.0.0/16"]);
      expect(ok.code).toBe(0);
      for (;;) {
        const m = (await sv.next()).value;
        const p = (m.PeersChanged ?? m.Peers ?? []).find((x: any) => x.ID === r0.ID);
        if (p?.AllowedIPs?.includes("10.33.0.0/16")) {
          expect(p.PrimaryRoutes).toEqual(["10.33.0.0/16"]);
          break;
        }
      }
      await sv.return!();
      const listed = (await listNodes()).find((x) => x.name === "router");
      expect(listed.advertisedRoutes).toEqual(["10.33.0.0/16"]);
      expect(listed.approvedRoutes).toEqual(["10.33.0.0/16"]);
    });

    it("route approval: only advertised routes, added or removed (--replace when meant), exit routes as a pair, routes views", async () => {
      const k = await key("--user", "alice", "--preapproved");
      const gw = await node("gw");
      await gw.register({ Auth: { AuthKey: k }, Hostinfo: { Hostname: "gw", RoutableIPs: ["10.33.0.0/16", "10.44.0.0/16", "0.0.0.0/0", "::/0"] } });
      const approved = async () => (await listNodes()).find((x) => x.name === "gw").approvedRoutes;
      // A route the node never advertised: refused, naming the route and what it advertises.
      const bad = await s.cli(["nodes", "approve-routes", "gw", "10.9.0.0/24"]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('routes[0]: "10.9.0.0/24"');
      expect(bad.stderr).toContain("does not advertise");
      expect(await approved()).toEqual([]);
      // Adding keeps what is approved; an exit route approves the pair.
      expect((await s.cli(["nodes", "approve-routes", "gw", "10.33.0.0/16"])).code).toBe(0);
      const exit = await s.cli(["nodes", "approve-routes", "gw", "0.0.0.0/0"]);
      expect(exit.code).toBe(0);
      expect(exit.stdout).toContain("gw: approved routes 0.0.0.0/0,10.33.0.0/16,::/0");
      expect(await approved()).toEqual(["0.0.0.0/0", "10.33.0.0/16", "::/0"]);
      // The node itself learns the approval: its own AllowedIPs carry the exit pair (its packet
      // filter admits forwarded traffic only for approved routes). 10.33.0.0/16 is primary on
      // "router" (an earlier test), so it is not gw's.
      const self = gw.map({ Hostinfo: { Hostname: "gw", RoutableIPs: ["10.33.0.0/16", "10.44.0.0/16", "0.0.0.0/0", "::/0"] } })[Symbol.asyncIterator]();
      const selfNode = (await self.next()).value.Node;
      await self.return!();
      expect(selfNode.AllowedIPs).toEqual(expect.arrayContaining(["0.0.0.0/0", "::/0"]));
      // Removing half the exit pair removes both; other routes stay.
      expect((await s.cli(["nodes", "approve-routes", "gw", "::/0", "--remove"])).code).toBe(0);
      expect(await approved()).toEqual(["10.33.0.0/16"]);
      // No routes: an error unless --replace (which clears); --replace sets exactly the list.
      const none = await s.cli(["nodes", "approve-routes", "gw"]);
      expect(none.code).not.toBe(0);
      expect(none.stderr).toContain("--replace");
      expect((await s.cli(["nodes", "approve-routes", "gw", "10.44.0.0/16", "--replace"])).code).toBe(0);
      expect(await approved()).toEqual(["10.44.0.0/16"]);
      // The views: a ROUTES column in `nodes list`, and `nodes routes NODE`.
      const list = await s.cli(["nodes", "list"]);
      expect(list.stdout).toMatch(/ROUTES/);
      expect(list.stdout).toContain("10.33.0.0/16(pending),10.44.0.0/16,exit(pending)");
      const routes = await s.cli(["nodes", "routes", "gw"]);
      expect(routes.code).toBe(0);
      expect(routes.stdout).toMatch(/10\.44\.0\.0\/16\s+approved/);
      expect(routes.stdout).toMatch(/10\.33\.0\.0\/16\s+pending/);
      expect(routes.stdout).toMatch(/exit node \(0\.0\.0\.0\/0, ::\/0\)\s+pending/);
      // Half an exit node (only ::/0 advertised) cannot be approved as one.
      const half = await node("half");
      await half.register({ Auth: { AuthKey: await key("--user", "alice", "--preapproved") }, Hostinfo: { Hostname: "half", RoutableIPs: ["::/0"] } });
      const h = await s.cli(["nodes", "approve-routes", "half", "::/0"]);
      expect(h.code).not.toBe(0);
      expect(h.stderr).toContain("exit routes go as a pair");
    });

    it("route auto-approval: stored by the server when advertised and when the policy changes; kept after", async () => {
      const f = join(s.dir, "autoapprove.hujson");
      const withApprovers = (routes: string) =>
        TAG_POLICY.replace('"groups":', `"autoApprovers": { "routes": { ${routes} } },\n  "groups":`);
      writeFileSync(f, withApprovers(`"10.55.0.0/16": ["alice@"]`));
      expect((await s.cli(["policy", "set", f])).code).toBe(0);
      const k = await key("--user", "alice", "--reusable", "--preapproved");
      const approvedOf = async (name: string) => (await listNodes()).find((x) => x.name === name).approvedRoutes;
      // Advertised at registration: approved and stored.
      const a = await node("auto-a");
      await a.register({ Auth: { AuthKey: k }, Hostinfo: { Hostname: "auto-a", RoutableIPs: ["10.55.1.0/24", "10.66.0.0/16"] } });
      expect(await approvedOf("auto-a")).toEqual(["10.55.1.0/24"]);
      // A route still pending is approved when a policy change auto-approves it.
      writeFileSync(f, withApprovers(`"10.55.0.0/16": ["alice@"], "10.66.0.0/16": ["alice@"]`));
      expect((await s.cli(["policy", "set", f])).code).toBe(0);
      expect(await approvedOf("auto-a")).toEqual(["10.55.1.0/24", "10.66.0.0/16"]);
      // Approvals are state: a policy without autoApprovers does not revoke them.
      writeFileSync(f, TAG_POLICY);
      expect((await s.cli(["policy", "set", f])).code).toBe(0);
      expect(await approvedOf("auto-a")).toEqual(["10.55.1.0/24", "10.66.0.0/16"]);
    });

    it("interactive login through the real web page", async () => {
      const n = await node("laptop");
      const first = await n.register({});
      expect(first.MachineAuthorized).toBe(false);
      expect(first.AuthURL).toMatch(new RegExp(`^${s.url}/register/[A-Za-z0-9_-]+$`));
      expect((await n.register({})).AuthURL).toBe(first.AuthURL); // asking again: same link
      const follow = n.register({ Followup: first.AuthURL });
      const path = new URL(first.AuthURL).pathname;
      // Not logged in: redirected to the login form.
      const r0 = await fetch(first.AuthURL, { redirect: "manual" });
      expect(r0.status).toBe(303);
      expect(r0.headers.get("location")).toBe(`/login?next=${encodeURIComponent(path)}`);
      const form = await fetch(`${s.url}${r0.headers.get("location")}`);
      const html = await form.text();
      const csrfCookie = form.headers.get("set-cookie")!.split(";")[0]!;
      const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
      // Wrong password, then a forged form without the cookie, then the right one.
      const post = (body: Record<string, string>, cookie?: string) =>
        fetch(`${s.url}/login`, {
          method: "POST",
          redirect: "manual",
          headers: { "content-type": "application/x-www-form-urlencoded", ...(cookie ? { cookie } : {}) },
          body: new URLSearchParams(body).toString(),
        });
      expect((await post({ csrf, next: path, username: "alice", password: "wrong" }, csrfCookie)).status).toBe(401);
      expect((await post({ csrf, next: path, username: "alice", password: "correct horse" })).status).toBe(403);
      const ok = await post({ csrf, next: path, username: "alice", password: "correct horse" }, csrfCookie);
      expect(ok.status).toBe(303);
      expect(ok.headers.get("location")).toBe(path);
      const session = ok.headers.get("set-cookie")!.split(";")[0]!;
      expect(ok.headers.get("set-cookie")).toMatch(/HttpOnly/);
      const confirm = await fetch(`${s.url}${path}`, { headers: { cookie: session } });
      const chtml = await confirm.text();
      expect(chtml).toContain("laptop");
      const ccsrf = /name="csrf" value="([^"]+)"/.exec(chtml)![1]!;
      const forged = await fetch(`${s.url}${path}`, { method: "POST", headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" }, body: "csrf=nope" });
      expect(forged.status).toBe(403);
      const done = await fetch(`${s.url}${path}`, {
        method: "POST",
        headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ csrf: ccsrf }).toString(),
      });
      expect(done.status).toBe(200);
      expect(await done.text()).toContain("Device registered");
      const resp = await follow;
      expect(resp.MachineAuthorized).toBe(true);
      expect(resp.Login.LoginName).toContain("alice");
      const listed = (await listNodes()).find((x) => x.hostname === "laptop");
      expect(listed.user).toBe("alice");
      const m = n.map()[Symbol.asyncIterator]();
      expect((await m.next()).value.Node.Name).toBe("laptop.lattice.internal.");
      await m.return!();
    });

    it("interactive login with requested tags: only tag owners may claim them", async () => {
      const login = (user: string, password: string, next: string) => webLogin(s.url, user, password, next);
      const confirm = async (path: string, session: string) => {
        const page = await (await fetch(`${s.url}${path}`, { headers: { cookie: session } })).text();
        const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
        return fetch(`${s.url}${path}`, { method: "POST", headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ csrf }).toString() });
      };
      const hostinfo = { Hostname: "tagged-box", OS: "linux", RequestTags: ["tag:server"] };
      const n = await node("tagged-box");
      const first = await n.register({ Hostinfo: hostinfo });
      const path = new URL(first.AuthURL).pathname;
      // bob is not an owner of tag:server (alice is): refused with a message.
      const bobSession = await login("bob", "battery staple", path);
      const refused = await confirm(path, bobSession);
      expect(refused.status).toBe(403);
      expect(await refused.text()).toMatch(/not an owner of &quot;tag:server&quot;/);
      const follow = n.register({ Hostinfo: hostinfo, Followup: first.AuthURL });
      const aliceSession = await login("alice", "correct horse", path);
      expect((await confirm(path, aliceSession)).status).toBe(200);
      const resp = await follow;
      expect(resp.MachineAuthorized).toBe(true);
      expect(resp.Login.LoginName).toBe("tagged-devices");
      const listed = (await listNodes()).find((x) => x.hostname === "tagged-box");
      expect(listed.tags).toEqual(["tag:server"]);
      expect(listed.user).toBeNull();
      expect(listed.keyExpiry).toBeNull();
      // A finished or unknown registration link is handled, not crashed on.
      expect((await fetch(`${s.url}/register/unknownregistrationid`, { headers: { cookie: aliceSession } })).status).toBe(404);
    });

    it("REST API: same operations with API keys; bad input gets 4xx and the server keeps running", async () => {
      expect((await s.api("GET", "/nodes")).status).toBe(401);
      expect((await s.api("GET", "/nodes", undefined, "lapi-000000000000-AAAAAAAAAAAAAAAAAAAAAAAA")).status).toBe(401);
      const users = await s.api("GET", "/users", undefined, apiKey);
      expect(users.status).toBe(200);
      expect(users.json.users.length).toBeGreaterThanOrEqual(2);
      const created = await s.api("POST", "/keys", { user: "alice", reusable: true, expiry: "48h" }, apiKey);
      expect(created.status).toBe(201);
      expect(created.json.key).toMatch(/^lkey-/);
      const unknown = await s.api("POST", "/keys", { user: "alice", color: "red" }, apiKey);
      expect(unknown.status).toBe(400);
      expect(unknown.json.error.message).toContain('unknown field "color"');
      const wrongType = await s.api("POST", "/keys", { user: "alice", reusable: "yes" }, apiKey);
      expect(wrongType.status).toBe(400);
      expect(wrongType.json.error.message).toContain("body.reusable");
      const badJson = await s.api("POST", "/users", undefined, apiKey, "{not json");
      expect(badJson.status).toBe(400);
      expect(badJson.json.error.code).toBe("bad_json");
      const big = await s.api("PUT", "/policy", undefined, apiKey, Buffer.alloc(2 << 20, 0x20));
      expect(big.status).toBe(413);
      expect((await s.api("GET", "/nodes/nosuch", undefined, apiKey)).status).toBe(404);
      expect((await s.api("PATCH", "/nodes", undefined, apiKey)).status).toBe(405);
      // Malformed node-protocol requests over the Noise channel.
      const n = await node("garbage");
      const raw = await n.client.raw("/machine/register", "{nope");
      expect(raw.status).toBe(400);
      const unk = await n.client.raw("/machine/register", JSON.stringify({ Version: 1, NodeKey: n.nodeKey, Bogus: 1 }));
      expect(unk.status).toBe(400);
      // Revoked API keys stop working.
      const k2 = (await s.cli(["apikeys", "create"])).stdout.trim();
      expect((await s.api("GET", "/users", undefined, k2)).status).toBe(200);
      const id = k2.split("-")[1]!;
      expect((await s.cli(["apikeys", "revoke", id])).code).toBe(0);
      expect((await s.api("GET", "/users", undefined, k2)).json.error.code).toBe("api_key_revoked");
      const health = await fetch(`${s.url}/health`);
      expect(health.status).toBe(200);
      expect(s.proc.exitCode).toBeNull();
    });

    /** A node's current full netmap (a fresh stream's first message). */
    const fullMap = async (n: TestNode): Promise<any> => {
      const it = n.map()[Symbol.asyncIterator]();
      const m = (await it.next()).value;
      await it.return!();
      return m;
    };
    const srcIPs = (m: any): string[] => (m.PacketFilter ?? []).flatMap((r: any) => r.SrcIPs ?? []);
    const setPolicy = async (text: string) => {
      const r = await s.api("PUT", "/policy", { policy: text }, apiKey);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
    };

    it("a node name passed to another user's machine after a user deletion does not inherit the old node's filter or peers", async () => {
      for (const u of ["ann", "ben", "cat"]) expect((await s.cli(["users", "create", u])).code).toBe(0);
      // ben may reach the server on 22; a test entry names ann (it holds while ann exists).
      await setPolicy(`{
        "tagOwners": { "tag:server": ["alice@"], "tag:prod": ["group:ops"] },
        "groups": { "group:ops": ["bob@"] },
        "acls": [{ "action": "accept", "src": ["ben@"], "dst": ["tag:server:22"] }],
        "tests": [{ "src": "ann@", "deny": ["tag:server:22"] }],
      }`);
      const server = await node("srv-a1");
      await server.register({ Auth: { AuthKey: await key("--tags", "tag:server", "--preapproved") } });
      const laptop = await node("a1-laptop");
      await laptop.register({ Auth: { AuthKey: await key("--user", "ben", "--preapproved") } });
      const ip = (name: string) => listNodes().then((l) => l.find((x) => x.name === name)?.ipv4 as string);
      const benIp = await ip("a1-laptop");
      await waitFor(async () => srcIPs(await fullMap(server)).includes(benIp), 3000, 100);
      // Deleting ann does not re-run the tests: the policy keeps compiling.
      expect((await s.cli(["users", "delete", "ann"])).code).toBe(0);
      expect((await s.cli(["nodes", "delete", "a1-laptop"])).code).toBe(0);
      const carol = await node("a1-laptop");
      await carol.register({ Auth: { AuthKey: await key("--user", "cat", "--preapproved") } });
      const carolIp = await ip("a1-laptop");
      expect(carolIp).toBeDefined();
      const serverView = await fullMap(server);
      expect(srcIPs(serverView)).not.toContain(carolIp);
      expect((serverView.Peers ?? []).map((p: any) => p.Name)).not.toContain("a1-laptop.lattice.internal.");
      const carolView = await fullMap(carol);
      expect((carolView.Peers ?? []).map((p: any) => p.Name)).not.toContain("srv-a1.lattice.internal.");
      expect(carolView.PacketFilter ?? []).toEqual([]);
      expect(srcIPs(serverView)).not.toContain(benIp);
      expect((await listNodes()).every((n) => n.policyError === null)).toBe(true);
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
      for (const n of ["a1-laptop", "srv-a1"]) expect((await s.cli(["nodes", "delete", n])).code).toBe(0);
      await setPolicy(TAG_POLICY);
    });

    it("a device that would fail a policy test does not freeze compilation: later deletions still reach packet filters", async () => {
      expect((await s.cli(["users", "create", "dan"])).code).toBe(0);
      const dnsPolicy = (tests: string) => `{
        "tagOwners": { "tag:server": ["alice@"], "tag:prod": ["group:ops"], "tag:dns": ["alice@"] },
        "groups": { "group:ops": ["bob@"], "group:staff": ["alice@", "bob@"], "group:newbies": ["dan@"] },
        "acls": [{ "action": "accept", "src": ["group:staff"], "dst": ["tag:dns:53"] }],
        ${tests}
      }`;
      await setPolicy(dnsPolicy(""));
      const dns = await node("dns-a1");
      await dns.register({ Auth: { AuthKey: await key("--tags", "tag:dns", "--preapproved") } });
      const staff = await node("staff-a1");
      await staff.register({ Auth: { AuthKey: await key("--user", "alice", "--preapproved") } });
      const staffIp = (await listNodes()).find((x) => x.name === "staff-a1")!.ipv4 as string;
      // "the newbies can reach the DNS server" holds while no newbie has a device.
      await setPolicy(dnsPolicy(`"tests": [{ "src": "group:newbies", "accept": ["tag:dns:53"] }],`));
      expect(srcIPs(await fullMap(dns))).toContain(staffIp);
      const dan = await node("dan-a1");
      await dan.register({ Auth: { AuthKey: await key("--user", "dan", "--preapproved") } });
      expect((await s.cli(["nodes", "delete", "staff-a1"])).code).toBe(0);
      await waitFor(async () => !srcIPs(await fullMap(dns)).includes(staffIp), 3000, 100);
      expect((await listNodes()).every((n) => n.policyError === null)).toBe(true);
      // The test is still checked when a policy is saved.
      const rejected = await s.api("PUT", "/policy", { policy: dnsPolicy(`"tests": [{ "src": "group:newbies", "accept": ["tag:dns:53"] }],`) }, apiKey);
      expect(rejected.status).toBe(400);
      expect(rejected.json.error.message).toMatch(/test\(s\) failed/);
      for (const n of ["dns-a1", "dan-a1"]) expect((await s.cli(["nodes", "delete", n])).code).toBe(0);
      await setPolicy(TAG_POLICY);
    });

    it("a deleted node's address is not handed to the next node", async () => {
      const k = await key("--user", "alice", "--reusable", "--preapproved");
      const first = await node("addr-a1");
      await first.register({ Auth: { AuthKey: k } });
      const before = (await listNodes()).find((x) => x.name === "addr-a1")!;
      expect((await s.cli(["nodes", "delete", "addr-a1"])).code).toBe(0);
      const next = await node("addr-b1");
      await next.register({ Auth: { AuthKey: k } });
      const after = (await listNodes()).find((x) => x.name === "addr-b1")!;
      expect(after.ipv4).not.toBe(before.ipv4);
      expect(after.ipv6).not.toBe(before.ipv6);
      expect((await s.cli(["nodes", "delete", "addr-b1"])).code).toBe(0);
    });

    // Keep last: it throttles logins from 127.0.0.1 for the rest of the window.
    it("repeated failed logins from one address are throttled (429)", async () => {
      const form = await fetch(`${s.url}/login`);
      const cookie = form.headers.get("set-cookie")!.split(";")[0]!;
      const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())![1]!;
      const attempt = (password: string) =>
        fetch(`${s.url}/login`, {
          method: "POST",
          redirect: "manual",
          headers: { "content-type": "application/x-www-form-urlencoded", cookie },
          body: new URLSearchParams({ csrf, next: "/", username: "alice", password }).toString(),
        }).then((r) => r.status);
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push(await attempt(`wrong-${i}`));
      expect(statuses.every((x) => x === 401)).toBe(true);
      expect(await attempt("wrong-again")).toBe(429);
      expect(await attempt("correct horse")).toBe(429);
    });

    it("the CLI exits non-zero with a message when the server is not reachable", async () => {
      const r = await s.cli(["--socket", join(s.dir, "nope.sock"), "users", "list"]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/cannot reach the server/);
    });
  });
}
