/**
 * Issue 11, the admin CLI found lacking by a new user, against the real server: nodes by
 * FQDN, `nodes show`, `nodes list --user/--tag/--online`, relative times, key prefixes of
 * any unambiguous length, `keys delete`, `keys create` printing the key alone on stdout,
 * repeated revoke/approve saying it was already so, `users rename|passwd|set-email`.
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, TestNode, webLogin, type ServerProc } from "./harness.js";

describe("admin CLI (issue 11)", () => {
  let s: ServerProc;
  const nodes: TestNode[] = [];
  const streams: AsyncIterator<unknown>[] = [];

  beforeAll(async () => {
    s = await startServer();
    expect((await s.cli(["users", "create", "alice", "--password-stdin"], "alice-password\n")).code).toBe(0);
    const pol = `${s.dir}/p.hujson`;
    writeFileSync(pol, `{"tagOwners": {"tag:server": ["alice@"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`);
    expect((await s.cli(["policy", "set", pol])).code).toBe(0);
  });
  afterAll(async () => {
    for (const it of streams) await it.return?.().catch(() => {});
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("keys create prints the key alone on stdout and a summary on stderr; prefixes of any unambiguous length work", async () => {
    const r = await s.cli(["keys", "create", "--tags", "tag:server", "--preapproved", "--reusable", "--expiry", "6d"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^lkey-[0-9a-f]{12}-\S+\n$/);
    const prefix = r.stdout.split("-")[1]!;
    expect(r.stderr).toMatch(new RegExp(`created auth key ${prefix} \\(reusable, pre-approved; tags tag:server; expires .* \\(in (5|6) d\\)\\)`));
    const list = await s.cli(["keys", "list"]);
    expect(list.stdout).toMatch(/\(in (5|6) d\)\s+admin-socket$/m);
    expect(JSON.parse((await s.cli(["keys", "list", "--json"])).stdout)[0].createdBy).toBe("admin-socket");
    const rev = await s.cli(["keys", "revoke", prefix.slice(0, 6)]);
    expect(rev.stdout.trim()).toBe(`revoked key ${prefix.slice(0, 6)}`);
    const again = await s.cli(["keys", "revoke", prefix]);
    expect(again.stdout.trim()).toBe(`key ${prefix} was already revoked`);
    const del = await s.cli(["keys", "delete", prefix.slice(0, 8)]);
    expect(del.stdout.trim()).toBe(`deleted key ${prefix}`);
    const gone = await s.cli(["keys", "revoke", prefix]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain("not found");
    const short = await s.cli(["keys", "revoke", "ab"]);
    expect(short.code).not.toBe(0);
  });

  it("finds nodes by FQDN, shows one, filters the list, and says when approval was already given", async () => {
    const key = (await s.cli(["keys", "create", "--user", "alice", "--reusable"])).stdout.trim();
    const tkey = (await s.cli(["keys", "create", "--tags", "tag:server", "--preapproved"])).stdout.trim();
    const a = await new TestNode(s.url, "laptop").connect();
    const b = await new TestNode(s.url, "srv").connect();
    nodes.push(a, b);
    await a.register({ Auth: { AuthKey: key } } as never);
    await b.register({ Auth: { AuthKey: tkey } } as never);
    const it = b.map()[Symbol.asyncIterator]();
    streams.push(it);
    await it.next();
    const ok = await s.cli(["nodes", "approve", "laptop.lattice.internal."]);
    expect(ok.stdout.trim()).toMatch(/^approve: laptop \(id \d+\)$/);
    const again = await s.cli(["nodes", "approve", "laptop.lattice.internal"]);
    expect(again.stdout.trim()).toMatch(/^laptop \(id \d+\) was already approved$/);
    const show = await s.cli(["nodes", "show", "srv.lattice.internal"]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^name\s+srv$/m);
    expect(show.stdout).toMatch(/^owner\s+tag:server$/m);
    expect(show.stdout).toMatch(/^status\s+online$/m);
    expect(show.stdout).toMatch(/^key expiry\s+never$/m);
    expect(JSON.parse((await s.cli(["nodes", "show", "laptop", "--json"])).stdout).name).toBe("laptop");
    const names = async (...args: string[]) => JSON.parse((await s.cli(["nodes", "list", "--json", ...args])).stdout).map((n: any) => n.name);
    expect(await names("--user", "alice")).toEqual(["laptop"]);
    expect(await names("--tag", "tag:server")).toEqual(["srv"]);
    expect(await names("--online")).toEqual(["srv"]);
    expect((await s.cli(["nodes", "list"])).stdout).toMatch(/laptop.*\(in 179 d\)/);
    expect((await s.cli(["nodes", "show", "nope.lattice.internal"])).stderr).toContain("not found");
  });

  it("users rename, set-email and passwd (which ends the user's web sessions)", async () => {
    expect((await s.cli(["users", "create", "carol", "--password-stdin"], "carol-password\n")).code).toBe(0);
    const cookie = await webLogin(s.url, "carol", "carol-password", "/admin/machines");
    const before = await fetch(`${s.url}/admin/machines`, { headers: { cookie }, redirect: "manual" });
    expect(before.status).toBe(200);
    const short = await s.cli(["users", "passwd", "carol"], "short\n");
    expect(short.code).not.toBe(0);
    expect(short.stderr).toContain("password: must be at least 8 characters");
    expect((await s.cli(["users", "passwd", "carol"], "new-carol-password\n")).stdout.trim()).toBe("password of carol changed");
    const after = await fetch(`${s.url}/admin/machines`, { headers: { cookie }, redirect: "manual" });
    expect(after.status).toBe(303);
    await webLogin(s.url, "carol", "new-carol-password", "/admin/machines");
    expect((await s.cli(["users", "rename", "carol", "caroline"])).stdout.trim()).toBe("renamed user carol to caroline");
    const taken = await s.cli(["users", "rename", "caroline", "alice"]);
    expect(taken.stderr).toContain(`user "alice" already exists`);
    const bad = await s.cli(["users", "set-email", "caroline", "not-an-email"]);
    expect(bad.stderr).toContain(`email: "not-an-email" is not an e-mail address`);
    expect((await s.cli(["users", "set-email", "caroline", "caroline@corp.example"])).stdout.trim()).toBe("caroline: e-mail caroline@corp.example");
    expect((await s.cli(["users", "set-email", "caroline", ""])).stdout.trim()).toBe("caroline: e-mail (none)");
    const audit = (await s.cli(["audit", "--json"])).stdout;
    for (const a of ["user.passwd", "user.rename", "user.set-email"]) expect(audit).toContain(`"action":"${a}"`);
    expect(audit).not.toContain("new-carol-password");
  });
});
