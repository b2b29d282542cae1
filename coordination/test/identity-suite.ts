/**
 * Identity rules through a real server process (issue 6: A4 look-alike tag owners, A8
 * roles, A9 localpart→root, A10 confirm page, B4 duplicate identities), run against
 * SQLite (identity.sqlite.test.ts) and PostgreSQL (identity.postgres.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { formatKey } from "@lattice/types";
import { startServer, TestNode, waitFor, webLogin, type ServerProc } from "./harness.js";

const here = fileURLToPath(new URL(".", import.meta.url));

const POLICY = `{
  "tagOwners": {
    "tag:server": ["alice@corp.example"],
    "tag:web": ["BOB@Corp.Example"],
    "tag:ops": ["autogroup:admin"],
  },
  "acls": [
    { "action": "accept", "src": ["autogroup:admin"], "dst": ["tag:server:22"] },
    { "action": "accept", "src": ["autogroup:owner"], "dst": ["tag:server:80"] },
  ],
  "ssh": [
    { "action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["autogroup:nonroot", "localpart:*@corp.example"] },
  ],
}`;

/** Whether an IPv4 address is in a filter's SrcIPs (entries: "*", addresses, CIDRs, a-b ranges). */
function admits(srcIPs: string[], ip: string): boolean {
  const n = (a: string) => a.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const x = n(ip);
  return srcIPs.some((e) => {
    if (e === "*") return true;
    if (e.includes(":")) return false;
    if (e.includes("-")) {
      const [lo, hi] = e.split("-");
      return n(lo!) <= x && x <= n(hi!);
    }
    const [base, bits] = e.split("/");
    const size = 2 ** (32 - Number(bits ?? 32));
    const lo = Math.floor(n(base!) / size) * size;
    return lo <= x && x < lo + size;
  });
}

const IS_ADMIN = "https://tailscale.com/cap/is-admin";
const IS_OWNER = "https://tailscale.com/cap/is-owner";

/** Runs migrate-upgrade.mjs: an old database with `users`, upgraded by the current build. */
export function migrateUpgrade(db: string, users: { name: string; email?: string }[]): Promise<{ rows: { id: number; name: string; email: string | null; role: string }[]; dupError: string | null; ownerError: string | null }> {
  return new Promise((res, rej) => {
    execFile(process.execPath, [resolve(here, "migrate-upgrade.mjs"), db, JSON.stringify(users)], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`migrate-upgrade failed: ${stderr || err.message}`));
      else res(JSON.parse(stdout.trim()));
    });
  });
}

/** Defines the suite; `db(name)` gives a database location (undefined = SQLite in the temp dir). */
export function identitySuite(label: string, db: (name: string) => Promise<string | undefined>, teardown: () => void = () => {}): void {
  describe(`identity rules (${label})`, () => {
    let s: ServerProc;
    const nodes: TestNode[] = [];
    const cli = async (...args: string[]) => s.cli(args);
    const ok = async (...args: string[]) => {
      const r = await s.cli(args);
      // `keys create` adds one summary line on stderr (issue 11); nothing else may warn.
      expect(r.stderr.replace(/^created auth key [0-9a-f]{12} \(.*\)\n$/, ""), args.join(" ")).toBe("");
      expect(r.code).toBe(0);
      return r.stdout.trim();
    };
    /** Registers a pre-approved node for a user (or tags) and returns its first full map. */
    const join = async (host: string, ...keyArgs: string[]) => {
      const k = await ok("keys", "create", "--preapproved", ...keyArgs);
      const n = await new TestNode(s.url, host).connect();
      nodes.push(n);
      expect((await n.register({ Auth: { AuthKey: k } } as any)).MachineAuthorized).toBe(true);
      return n;
    };
    const fullMap = async (n: TestNode) => {
      const it = n.map()[Symbol.asyncIterator]();
      const first = (await it.next()).value;
      await it.return!();
      return first;
    };
    const login = (user: string, password: string, next: string) => webLogin(s.url, user, password, next);

    beforeAll(async () => {
      s = await startServer({ db: await db("identity") });
      // odin is the first user (owner); the tailnet domain is corp.example.
      await ok("users", "create", "odin", "--email", "odin@corp.example", "--password", "odin password");
      await ok("users", "create", "alice", "--password", "alice password"); // no e-mail: login alice@
      await ok("users", "create", "bob", "--email", "Bob@Corp.Example", "--password", "bob password");
      await ok("users", "create", "ada", "--email", "ada@corp.example", "--role", "admin");
      await ok("users", "create", "root", "--email", "root@corp.example");
      const f = join0(s.dir, "policy.hujson");
      writeFileSync(f, POLICY);
      await ok("policy", "set", f);
    }, 60_000);

    afterAll(async () => {
      for (const n of nodes) n.close();
      await s?.stop();
      teardown();
    });

    it("users list shows roles: the first user is the owner, others members unless --role says otherwise", async () => {
      const users = JSON.parse(await ok("users", "list", "--json")) as { name: string; role: string }[];
      expect(Object.fromEntries(users.map((u) => [u.name, u.role]))).toEqual({ odin: "owner", alice: "member", bob: "member", ada: "admin", root: "member" });
      const table = await ok("users", "list");
      expect(table.split("\n")[0]).toMatch(/^ID\s+NAME\s+EMAIL\s+CREATED\s+ROLE$/);
      expect(table).toMatch(/odin\s+odin@corp\.example\s+\S+\s+owner/);
      const bad = await cli("users", "create", "zed", "--role", "superuser");
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('role: "superuser" is not one of owner, admin, member');
      const second = await cli("users", "create", "zed", "--role", "owner");
      expect(second.code).not.toBe(0);
      expect(second.stderr).toMatch(/already has an owner/);
    });

    it("B4: e-mail addresses are unique case-insensitively (CLI and REST), nothing is half-written", async () => {
      const dup = await cli("users", "create", "ivan", "--email", "bob@corp.example");
      expect(dup.code).not.toBe(0);
      expect(dup.stderr).toContain('email: "bob@corp.example" already belongs to user "bob"');
      const key = await ok("apikeys", "create");
      const rest = await s.api("POST", "/users", { name: "ivan", email: "BOB@CORP.EXAMPLE" }, key);
      expect(rest.status).toBe(409);
      expect(rest.json.error.code).toBe("email_taken");
      const users = JSON.parse(await ok("users", "list", "--json")) as { name: string }[];
      expect(users.map((u) => u.name)).not.toContain("ivan");
      // ivan therefore cannot hold bob's tag rights.
      expect((await cli("keys", "create", "--user", "ivan", "--tags", "tag:web")).code).not.toBe(0);
    });

    it("A4: an e-mail-less user alice is not the tag owner alice@corp.example; e-mail owners match case-insensitively", async () => {
      const lookalike = await cli("keys", "create", "--user", "alice", "--tags", "tag:server");
      expect(lookalike.code).not.toBe(0);
      expect(lookalike.stderr).toContain('user "alice@" is not an owner of "tag:server"');
      // bob's address is Bob@Corp.Example, the policy says BOB@Corp.Example: the same identity.
      expect((await cli("keys", "create", "--user", "bob", "--tags", "tag:web")).code).toBe(0);
      // A bare name matches nobody now, so a new policy with one is refused, naming it.
      const bare = join0(s.dir, "bare.hujson");
      writeFileSync(bare, `{"groups": {"group:eng": ["alice"]}, "tagOwners": {"tag:x": ["odin@corp.example"]}}`);
      const refused = await cli("policy", "check", bare);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('groups["group:eng"]: "alice" is not a login name; write the user\'s e-mail, or "alice@" for a user without one');
            // autogroup:admin as a tag owner follows roles.
      expect((await cli("keys", "create", "--user", "ada", "--tags", "tag:ops")).code).toBe(0);
      expect((await cli("keys", "create", "--user", "bob", "--tags", "tag:ops")).code).not.toBe(0);
    });

    it("A4/A10: the confirm page shows tags, ephemeral and key expiry, and refuses a look-alike tag owner before confirming", async () => {
      const n = await new TestNode(s.url, "box").connect();
      nodes.push(n);
      const hostinfo = { Hostname: "box", OS: "linux", RequestTags: ["tag:server"] };
      const first = await n.register({ Hostinfo: hostinfo, Ephemeral: true } as any);
      const path = new URL(first.AuthURL).pathname;
      const alice = await login("alice", "alice password", path);
      const page = await fetch(`${s.url}${path}`, { headers: { cookie: alice } });
      const html = await page.text();
      expect(page.status).toBe(403);
      expect(html).toContain("as <b>alice@</b>");
      expect(html).toContain("tag:server");
      expect(html).toContain("no user");
      expect(html).toMatch(/Ephemeral: <b>yes<\/b>/);
      expect(html).toContain("is not an owner of &quot;tag:server&quot;");
      expect(html).not.toContain("Register device</button>");
      // A plain (untagged, not ephemeral) device shows its owner and key expiry.
      const m = await new TestNode(s.url, "plain").connect();
      nodes.push(m);
      const p2 = new URL((await m.register({})).AuthURL).pathname;
      const html2 = await (await fetch(`${s.url}${p2}`, { headers: { cookie: await login("bob", "bob password", p2) } })).text();
      expect(html2).toContain("Owner: <b>Bob@Corp.Example</b> (you)");
      expect(html2).toMatch(/node key expires in <b>180 days<\/b>/);
      expect(html2).toContain("Ephemeral: no");
      expect(html2).toContain("Register device</button>");
      // A machine that is already registered: the page says confirming replaces that node's key and owner.
      const known = await join("known", "--user", "odin");
      known.nodeKey = formatKey("node", new Uint8Array(randomBytes(32)));
      const p3 = new URL((await known.register({})).AuthURL).pathname;
      const html3 = await (await fetch(`${s.url}${p3}`, { headers: { cookie: await login("bob", "bob password", p3) } })).text();
      expect(html3).toMatch(/already registered as <b>known<\/b> \(owned by odin@corp\.example\); confirming replaces its key/);
    });

    it("A8 + A9: autogroup:admin/owner and is-admin follow roles; localpart never maps to root", async () => {
      const server = await join("srv", "--tags", "tag:server");
      const odin = await join("odin-box", "--user", "odin");
      const ada = await join("ada-box", "--user", "ada");
      const bob = await join("bob-box", "--user", "bob");
      const root = await join("root-box", "--user", "root");
      const ip = async (n: TestNode) => (await fullMap(n)).Node.Addresses[0].split("/")[0];
      const [odinIp, adaIp, bobIp] = [await ip(odin), await ip(ada), await ip(bob)];
      const map = await waitFor(async () => {
        const m = await fullMap(server);
        const ssh = m.PacketFilter?.find((r: any) => r.DstPorts.some((d: any) => d.Ports.First === 22));
        return ssh && admits(ssh.SrcIPs, adaIp) ? m : null;
      });
      const ssh = map.PacketFilter.find((r: any) => r.DstPorts.some((d: any) => d.Ports.First === 22));
      const web = map.PacketFilter.find((r: any) => r.DstPorts.some((d: any) => d.Ports.First === 80));
      expect([admits(ssh.SrcIPs, odinIp), admits(ssh.SrcIPs, adaIp), admits(ssh.SrcIPs, bobIp)]).toEqual([true, true, false]);
      expect([admits(web.SrcIPs, odinIp), admits(web.SrcIPs, adaIp), admits(web.SrcIPs, bobIp)]).toEqual([true, false, false]);
      const caps = async (n: TestNode) => Object.keys((await fullMap(n)).Node.CapMap ?? {});
      expect(await caps(odin)).toEqual(expect.arrayContaining([IS_ADMIN, IS_OWNER]));
      expect(await caps(ada)).toContain(IS_ADMIN);
      expect(await caps(ada)).not.toContain(IS_OWNER);
      expect(await caps(bob)).not.toContain(IS_ADMIN);
      // SSH: root@corp.example's device gets no root mapping from localpart:*@corp.example.
      const rules = map.SSHPolicy.rules as { principals: { nodeIP: string }[]; sshUsers: Record<string, string> }[];
      const rootIp = await ip(root);
      const forRoot = rules.filter((r) => r.principals.some((p) => p.nodeIP === rootIp));
      expect(forRoot.length).toBeGreaterThan(0);
      for (const r of forRoot) expect(r.sshUsers.root ?? "").toBe("");
      expect(rules.some((r) => r.sshUsers.odin === "odin")).toBe(true);
      // Promoting bob makes his device an admin device; the change reaches the stream.
      await ok("users", "set-role", "bob", "admin");
      await waitFor(async () => (await caps(bob)).includes(IS_ADMIN));
      await ok("users", "set-role", "bob", "member");
      await waitFor(async () => !(await caps(bob)).includes(IS_ADMIN));
    });

    it("A8: the REST API needs an owner or admin; API keys carry their user's current role", async () => {
      const member = await cli("apikeys", "create", "--user", "bob");
      expect(member.code).not.toBe(0);
      expect(member.stderr).toMatch(/role member; API keys need an owner or admin/);
      const adaKey = await ok("apikeys", "create", "--user", "ada");
      expect((await s.api("GET", "/users", undefined, adaKey)).status).toBe(200);
      // A key made with ada's key is ada's too.
      const child = await s.api("POST", "/apikeys", { description: "child" }, adaKey);
      expect(child.status).toBe(201);
      expect(child.json.apiKey.user).toBe("ada");
      expect((await s.api("POST", "/apikeys", { user: "odin" }, adaKey)).status).toBe(403);
      await ok("users", "set-role", "ada", "member");
      for (const k of [adaKey, child.json.key]) {
        const r = await s.api("GET", "/users", undefined, k);
        expect(r.status).toBe(403);
        expect(r.json.error.code).toBe("forbidden");
      }
      await ok("users", "set-role", "ada", "admin");
      expect((await s.api("GET", "/users", undefined, adaKey)).status).toBe(200);
      expect(await ok("apikeys", "list")).toMatch(/USER\n[\s\S]*ada/);
    });

    it("A8: ownership moves with set-role owner; the owner cannot be demoted or deleted while others exist", async () => {
      const demote = await cli("users", "set-role", "odin", "member");
      expect(demote.code).not.toBe(0);
      expect(demote.stderr).toMatch(/is the tailnet's owner/);
      expect((await cli("users", "delete", "odin")).stderr).toMatch(/is the tailnet's owner/);
      expect(await ok("users", "set-role", "ada", "owner")).toBe("ada: role owner");
      const roles = Object.fromEntries((JSON.parse(await ok("users", "list", "--json")) as { name: string; role: string }[]).map((u) => [u.name, u.role]));
      expect(roles.ada).toBe("owner");
      expect(roles.odin).toBe("admin");
      expect(Object.values(roles).filter((r) => r === "owner")).toHaveLength(1);
      await ok("users", "set-role", "odin", "owner");
    });

    it("upgrading a database: first user becomes owner, the rest members; later duplicate e-mails lose the address", async () => {
      const loc = (await db("identity_upgrade")) ?? join0(s.dir, "upgrade.db");
      const r = await migrateUpgrade(loc, [
        { name: "bob", email: "bob@example.com" },
        { name: "ivan", email: "BOB@example.com" },
        { name: "carol" },
      ]);
      expect(r.rows.map((u) => [u.name, u.email, u.role])).toEqual([
        ["bob", "bob@example.com", "owner"],
        ["ivan", null, "member"],
        ["carol", null, "member"],
      ]);
      expect(r.dupError).not.toBeNull(); // the unique index on lower(email)
      expect(r.ownerError).not.toBeNull(); // at most one owner
    });
  });
}

function join0(dir: string, file: string): string {
  return join(dir, file);
}
