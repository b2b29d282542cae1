/**
 * SSH check mode, control half (issue 9), against the real server: nodes speak the Noise
 * channel with the control client; people approve on the real web page after logging in
 * through the real login form. The HoldAndDelegate URL is taken from the destination's
 * own netmap (the compiler's output) and expanded as the node's SSH server does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SSHAction } from "@lattice/types";
import { dbUpdate, startPostgres, startServer, TestNode, webLogin, type PgCluster, type ServerProc } from "./harness.js";

const POLICY = `{
  "tagOwners": { "tag:server": ["alice@example.com"], "tag:ci": ["alice@example.com"] },
  "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:*"] }],
  "ssh": [
    { "action": "check", "src": ["alice@example.com", "bob@example.com", "tag:ci"], "dst": ["tag:server"], "users": ["root"] },
    { "action": "check", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["deploy"], "checkPeriod": "always" },
    { "action": "accept", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["nobody"] },
  ],
}`;

/** Expands the delegate URL variables the way daemon/src/ssh/policy.ts expandDelegateUrl does. */
function expand(url: string, v: { src: number; dst: number; localUser: string }): string {
  return url.replace(/\$(SRC_NODE_ID|DST_NODE_ID|LOCAL_USER)/g, (_, k: string) =>
    encodeURIComponent(k === "SRC_NODE_ID" ? String(v.src) : k === "DST_NODE_ID" ? String(v.dst) : v.localUser),
  );
}

let cluster: PgCluster | undefined;
afterAll(() => cluster?.stop());

describe.each([
  ["SQLite", async () => undefined],
  ["PostgreSQL", async () => (cluster ??= await startPostgres()).createDb("lattice_sshcheck")],
] as const)("SSH check mode (control server, %s)", (_label, dbUrl) => {
  let s: ServerProc;
  const nodes: TestNode[] = [];
  const ids = new Map<string, number>();
  let server1: TestNode;
  let server2: TestNode;
  let holdUrl = "";
  let alice = "";
  let bob = "";

  const join_ = async (host: string, key: string) => {
    const n = await new TestNode(s.url, host).connect();
    nodes.push(n);
    const r = await n.register({ Auth: { AuthKey: key } });
    expect(r.MachineAuthorized).toBe(true);
    return n;
  };
  const key = async (...args: string[]) => {
    const r = await s.cli(["keys", "create", "--preapproved", "--reusable", ...args]);
    expect(r.code).toBe(0);
    return r.stdout.trim();
  };
  /** The destination node asks about a connection from `src` as `localUser`. */
  const ask = (dst: TestNode, src: string, localUser: string, dstName = "server1") =>
    dst.client.sshAction(expand(holdUrl, { src: ids.get(src)!, dst: ids.get(dstName)!, localUser }));
  const pagePath = (a: SSHAction) => {
    const m = /visit: (\S+)\n/.exec(a.message ?? "");
    expect(m).not.toBeNull();
    return new URL(m![1]!).pathname;
  };
  /** Opens the page as `session` and posts `decision` with the page's CSRF token. */
  const decide = async (path: string, session: string, decision: "approve" | "deny") => {
    const page = await fetch(`${s.url}${path}`, { headers: { cookie: session } });
    const html = await page.text();
    expect(page.status).toBe(200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    return fetch(`${s.url}${path}`, {
      method: "POST",
      headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf, decision }).toString(),
    });
  };

  beforeAll(async () => {
    const db = await dbUrl();
    s = await startServer({ ...(db ? { db } : {}), env: { LATTICE_CONTROL_SWEEP_INTERVAL: "1h" } });
    expect((await s.cli(["users", "create", "alice", "--email", "alice@example.com", "--password", "alice pw 123"])).code).toBe(0);
    expect((await s.cli(["users", "create", "bob", "--email", "bob@example.com", "--password", "bob pw 1234"])).code).toBe(0);
    const f = join(s.dir, "policy.hujson");
    writeFileSync(f, POLICY);
    const set = await s.cli(["policy", "set", f]);
    expect(set.stderr).toBe("");
    const serverKey = await key("--tags", "tag:server");
    server1 = await join_("server1", serverKey);
    server2 = await join_("server2", serverKey);
    await join_("laptop", await key("--user", "alice"));
    await join_("bobbox", await key("--user", "bob"));
    await join_("ci", await key("--tags", "tag:ci"));
    for (const n of JSON.parse((await s.cli(["nodes", "list", "--json"])).stdout) as { id: number; hostname: string }[]) ids.set(n.hostname, n.id);
    // The check rule as server1 received it in its netmap.
    const m = server1.map()[Symbol.asyncIterator]();
    const first = (await m.next()).value;
    await m.return!();
    const rules = first.SSHPolicy.rules as { action: SSHAction }[];
    holdUrl = rules.find((r) => r.action.holdAndDelegate)!.action.holdAndDelegate!;
    expect(holdUrl).toBe(`${s.url}/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER`);
    alice = await webLogin(s.url, "alice", "alice pw 123", "/");
    bob = await webLogin(s.url, "bob", "bob pw 1234", "/");
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) n.close();
    await s?.stop();
  });

  it("a tagged source is rejected at once with the reason", async () => {
    const a = await ask(server1, "ci", "root");
    expect(a.reject).toBe(true);
    expect(a.accept).toBeUndefined();
    expect(a.holdAndDelegate).toBeUndefined();
    expect(a.message).toMatch(/ci cannot be checked: tagged devices have no user to re-authenticate/);
  });

  it("URL flow: pending check, approved on the page by the source user, the wait answers Accept with the rule's flags", async () => {
    const a = await ask(server1, "laptop", "root");
    expect(a.message).toMatch(/^\n# Lattice SSH requires an additional check\.\n# To authenticate, visit: http:\/\/127\.0\.0\.1:\d+\/ssh\/check\/[A-Za-z0-9_-]{22}\n$/);
    expect(a.holdAndDelegate).toMatch(new RegExp(`^${s.url}/machine/ssh/check/[A-Za-z0-9_-]{22}/wait$`));
    const path = pagePath(a);
    // Not logged in: to the login form and back.
    const anon = await fetch(`${s.url}${path}`, { redirect: "manual" });
    expect(anon.status).toBe(303);
    expect(anon.headers.get("location")).toBe(`/login?next=${encodeURIComponent(path)}`);
    const page = await (await fetch(`${s.url}${path}`, { headers: { cookie: alice } })).text();
    expect(page).toContain("<b>alice@example.com</b> on <b>laptop</b> wants to SSH as <b>root</b> to <b>server1</b>");
    expect(page).toContain("12 hours");
    const waiting = server1.client.sshAction(a.holdAndDelegate!);
    await new Promise((r) => setTimeout(r, 300));
    const done = await decide(path, alice, "approve");
    expect(done.status).toBe(200);
    expect(await done.text()).toContain("Approved");
    expect(await waiting).toEqual({ accept: true, allowAgentForwarding: true, allowLocalPortForwarding: true, allowRemotePortForwarding: true });
    // Decided: a second decision is refused; the page says what happened.
    expect((await fetch(`${s.url}${path}`, { headers: { cookie: alice } }).then((r) => r.text()))).toContain("was approved");
  });

  it("within the rule's checkPeriod the next connection is accepted at once; after it, checked again", async () => {
    expect(await ask(server1, "laptop", "root")).toEqual({ accept: true, allowAgentForwarding: true, allowLocalPortForwarding: true, allowRemotePortForwarding: true });
    // The approval is per destination node: server2 still asks.
    expect((await ask(server2, "laptop", "root", "server2")).holdAndDelegate).toMatch(/\/wait$/);
    // 13 hours later (approval moved back past the default 12 h period): a new check.
    expect(await dbUpdate(s.db, "ssh_approvals", { approved_at: Date.now() - 13 * 3600_000 }, ["local_user", "root"])).toBe(1);
    expect((await ask(server1, "laptop", "root")).holdAndDelegate).toMatch(/\/wait$/);
  });

  it('checkPeriod "always": every connection is checked, even right after an approval', async () => {
    const a = await ask(server1, "laptop", "deploy");
    const path = pagePath(a);
    expect(await (await fetch(`${s.url}${path}`, { headers: { cookie: alice } })).text()).toContain("Every connection this way is checked");
    expect((await decide(path, alice, "approve")).status).toBe(200);
    expect((await server1.client.sshAction(a.holdAndDelegate!)).accept).toBe(true);
    const again = await ask(server1, "laptop", "deploy");
    expect(again.accept).toBeUndefined();
    expect(again.holdAndDelegate).toMatch(/\/wait$/);
  });

  it("deny: the wait answers Reject with a message", async () => {
    const a = await ask(server1, "laptop", "root");
    const path = pagePath(a);
    const waiting = server1.client.sshAction(a.holdAndDelegate!);
    expect((await decide(path, alice, "deny")).status).toBe(200);
    const r = await waiting;
    expect(r.reject).toBe(true);
    expect(r.message).toMatch(/denied/);
    // A denial records no approval: the next connection is checked again.
    expect((await ask(server1, "laptop", "root")).holdAndDelegate).toMatch(/\/wait$/);
  });

  it("another user may not see or decide the check (403); another node may not ask or wait (403)", async () => {
    const a = await ask(server1, "laptop", "root");
    const path = pagePath(a);
    const other = await fetch(`${s.url}${path}`, { headers: { cookie: bob } });
    expect(other.status).toBe(403);
    expect(await other.text()).toContain("waiting for <b>alice@example.com</b>");
    const bobPost = await fetch(`${s.url}${path}`, {
      method: "POST",
      headers: { cookie: bob, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf: "x", decision: "approve" }).toString(),
    });
    expect(bobPost.status).toBe(403);
    // server2 asks about server1's connections, or waits on server1's check.
    await expect(server2.client.sshAction(expand(holdUrl, { src: ids.get("laptop")!, dst: ids.get("server1")!, localUser: "root" }))).rejects.toMatchObject({
      status: 403,
      code: "ssh_check_forbidden",
    });
    await expect(server2.client.sshAction(a.holdAndDelegate!)).rejects.toMatchObject({ status: 403 });
    // A source node (laptop) is not the destination either.
    const laptop = nodes.find((n) => n.hostname === "laptop")!;
    await expect(laptop.client.sshAction(a.holdAndDelegate!)).rejects.toMatchObject({ status: 403 });
    // A forged form (no CSRF token of alice's session) decides nothing.
    const forged = await fetch(`${s.url}${path}`, {
      method: "POST",
      headers: { cookie: alice, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf: "nope", decision: "approve" }).toString(),
    });
    expect(forged.status).toBe(403);
    expect((await fetch(`${s.url}${path}`, { headers: { cookie: alice } })).status).toBe(200); // still pending
  });

  it("a connection no check rule covers is rejected with the reason (bob has no 'deploy' rule)", async () => {
    const r = await ask(server1, "bobbox", "deploy");
    expect(r.reject).toBe(true);
    expect(r.message).toContain("no check rule that lets bob@example.com on bobbox SSH as deploy to server1");
  });

  it("an expired check answers Reject on the wait; its page says so (410)", async () => {
    const a = await ask(server1, "laptop", "root");
    const id = /check\/([A-Za-z0-9_-]{22})\/wait$/.exec(a.holdAndDelegate!)![1]!;
    expect(await dbUpdate(s.db, "ssh_checks", { expires_at: Date.now() - 1000 }, ["id", id])).toBe(1);
    const r = await server1.client.sshAction(a.holdAndDelegate!);
    expect(r.reject).toBe(true);
    expect(r.message).toMatch(/not approved within 30 minutes/);
    expect((await fetch(`${s.url}${pagePath(a)}`, { headers: { cookie: alice } })).status).toBe(410);
    // Posting a decision anyway (with a valid token of alice's session, from a live check's page) is refused.
    const live = await ask(server1, "laptop", "root");
    const csrf = /name="csrf" value="([^"]+)"/.exec(await (await fetch(`${s.url}${pagePath(live)}`, { headers: { cookie: alice } })).text())![1]!;
    const late = await fetch(`${s.url}${pagePath(a)}`, {
      method: "POST",
      headers: { cookie: alice, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf, decision: "approve" }).toString(),
    });
    expect(late.status).toBe(410);
    expect((await server1.client.sshAction(a.holdAndDelegate!)).reject).toBe(true);
  });

  it("an approval given after the rule changed does not let the connection in", async () => {
    const a = await ask(server1, "laptop", "root");
    const f = join(s.dir, "policy-changed.hujson");
    writeFileSync(f, POLICY.replace('"users": ["root"] }', '"users": ["root"], "checkPeriod": "1h" }'));
    expect((await s.cli(["policy", "set", f])).code).toBe(0);
    expect((await decide(pagePath(a), alice, "approve")).status).toBe(200);
    const r = await server1.client.sshAction(a.holdAndDelegate!);
    expect(r.reject).toBe(true);
    expect(r.message).toMatch(/policy changed/);
    writeFileSync(f, POLICY);
    expect((await s.cli(["policy", "set", f])).code).toBe(0);
  });

  describe("hostile input", () => {
    it("bad ids, huge paths, wrong methods: 4xx, never 5xx, and the server keeps answering", async () => {
      const c = server1.client;
      for (const p of [
        "/machine/ssh/action/abc/to/1?local_user=root",
        "/machine/ssh/action/0/to/1?local_user=root",
        "/machine/ssh/action/1/to/99999999999999999999?local_user=root",
        `/machine/ssh/action/1/to/${ids.get("server1")}`,
        `/machine/ssh/action/1/to/${ids.get("server1")}?local_user=`,
        `/machine/ssh/action/1/to/${ids.get("server1")}?local_user=a%0Ab`,
        `/machine/ssh/action/1/to/${ids.get("server1")}?local_user=${"x".repeat(300)}`,
      ]) {
        expect((await c.get(p)).status, p).toBe(400);
      }
      for (const p of ["/machine/ssh/check/short/wait", `/machine/ssh/check/${"A".repeat(23)}/wait`, "/machine/ssh/check/../../map/wait", "/machine/ssh/nope"]) {
        expect((await c.get(p)).status, p).toBe(404);
      }
      // A well-formed id that does not exist (swept, or gone with its node): a clear Reject, so the node stops polling.
      expect(await c.sshAction(`${s.url}/machine/ssh/check/${"A".repeat(22)}/wait`)).toMatchObject({ reject: true, message: expect.stringMatching(/no longer exists/) });
      const huge = await c.get(`/machine/ssh/check/${"a".repeat(12_000)}/wait`).catch((e: Error) => ({ status: -1, body: e.message }));
      expect([404, 431, -1]).toContain(huge.status);
      expect((await c.raw(`/machine/ssh/action/1/to/2?local_user=root`, "{}")).status).toBe(405);
      // The page: unknown, malformed and huge ids are 404s for a logged-in user too.
      for (const id of ["x", "A".repeat(22), "%2e%2e", "a".repeat(129), "a".repeat(20_000)]) {
        const r = await fetch(`${s.url}/ssh/check/${id}`, { headers: { cookie: alice } });
        expect([404, 431], id.slice(0, 20)).toContain(r.status);
      }
      const post = await fetch(`${s.url}/ssh/check/${"B".repeat(22)}`, {
        method: "POST",
        headers: { cookie: alice, "content-type": "application/x-www-form-urlencoded" },
        body: "csrf=x&decision=approve",
      });
      expect(post.status).toBe(404);
      // Unknown source node: a clear rejection, not a hang.
      const unknown = await c.sshAction(`${s.url}/machine/ssh/action/999999/to/${ids.get("server1")}?local_user=root`);
      expect(unknown).toMatchObject({ reject: true });
      expect(await ask(server1, "ci", "root")).toMatchObject({ reject: true });
    });

    it("a flood of pending checks is capped per destination node; other nodes are unaffected", async () => {
      const results: SSHAction[] = [];
      // Earlier tests' checks on server2 expire first: the cap then admits exactly 32.
      await dbUpdate(s.db, "ssh_checks", { expires_at: 0 }, ["dst_node_id", ids.get("server2")!]);
      // Concurrent batches (under the channel's 16-stream cap): the count-then-insert must not overshoot.
      for (let b = 0; b < 4; b++) results.push(...(await Promise.all(Array.from({ length: 10 }, () => ask(server2, "laptop", "deploy", "server2")))));
      const held = results.filter((r) => r.holdAndDelegate).length;
      const refused = results.filter((r) => r.reject);
      expect(held).toBe(32);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0]!.message).toMatch(/too many SSH checks are waiting for approval on server2 \(limit 32\)/);
      // server1 still gets its checks.
      expect((await ask(server1, "laptop", "deploy")).holdAndDelegate).toMatch(/\/wait$/);
    });
  });
});
