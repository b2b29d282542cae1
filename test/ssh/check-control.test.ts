// SSH check mode with both halves real: lattice-control (spawned, SQLite) compiles a
// `check` rule into server1's netmap; the embedded SSH server (daemon/src/ssh) holds a
// stock OpenSSH connection, expands the HoldAndDelegate URL with the numeric node ids and
// fetches it over server1's Noise channel (control client `sshAction`); alice approves
// on the real web page after the real login form; the same ssh session runs. A second
// ssh within checkPeriod runs with no check. Needs root (sessions run as root).
//
// One substitution: the netmap's principals name laptop's tailnet addresses, but ssh
// comes from 127.0.0.1 here (no tailnet interface in this test), so the SSH rules get
// 127.0.0.1 as principal address too. Node ids, URLs and actions are the server's.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Node, SSHAction, SSHPolicy } from "@lattice/types";
import { requireRoot } from "../netns/run-script.js";
import { startServer as startControl, TestNode, webLogin, type ServerProc } from "../../coordination/test/harness.js";
import { ALICE, ssh, start, startServer, type Started } from "./harness.js";

const POLICY = `{
  "tagOwners": { "tag:server": ["alice@example.com"] },
  "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:*"] }],
  "ssh": [{ "action": "check", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["root"] }],
}`;

describe("SSH check mode end to end (lattice-control + embedded SSH server + OpenSSH)", () => {
  let control: ServerProc | undefined;
  let s: Started | undefined;
  const nodes: TestNode[] = [];
  const actions: SSHAction[] = [];
  let laptopNode: Node;

  beforeAll(async () => {
    requireRoot();
    control = await startControl();
    expect((await control.cli(["users", "create", "alice", "--email", "alice@example.com", "--password", "alice pw 123"])).code).toBe(0);
    const f = join(control.dir, "policy.hujson");
    writeFileSync(f, POLICY);
    expect((await control.cli(["policy", "set", f])).code).toBe(0);
    const join_ = async (host: string, ...args: string[]) => {
      const k = (await control!.cli(["keys", "create", "--preapproved", ...args])).stdout.trim();
      const n = await new TestNode(control!.url, host).connect();
      nodes.push(n);
      expect((await n.register({ Auth: { AuthKey: k } })).MachineAuthorized).toBe(true);
      return n;
    };
    const server1 = await join_("server1", "--tags", "tag:server");
    await join_("laptop", "--user", "alice");
    const m = server1.map()[Symbol.asyncIterator]();
    const netmap = (await m.next()).value;
    await m.return!();
    const self: Node = netmap.Node;
    laptopNode = (netmap.Peers as Node[]).find((p) => p.Name.startsWith("laptop."))!;
    const policy = netmap.SSHPolicy as SSHPolicy;
    expect(policy.rules[0]!.action.holdAndDelegate).toBe(`${control.url}/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER`);
    for (const r of policy.rules) r.principals = [...r.principals, { nodeIP: "127.0.0.1" }];
    s = await startServer(policy);
    s.backend.srcNode = laptopNode;
    s.backend.srcUser = ALICE;
    s.backend.self = () => ({ node: self });
    s.backend.checkHandler = async (url, signal) => {
      const a = await server1.client.sshAction(url, signal);
      actions.push(a);
      return a;
    };
  }, 120_000);

  afterAll(async () => {
    await s?.close();
    for (const n of nodes) n.close();
    await control?.stop();
  });

  it("holds the session with the approval URL as banner; approving on the page continues the same session; within checkPeriod no new check", async () => {
    const first = start("ssh", ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-p", String(s!.port), "root@127.0.0.1", "id", "-u"], { timeoutMs: 60_000 });
    // The SSH server expanded the URL with the numeric node ids and asked over Noise.
    const deadline = Date.now() + 20_000;
    while (actions.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(s!.backend.checkUrls[0]).toBe(`${control!.url}/machine/ssh/action/${laptopNode.ID}/to/${s!.backend.self().node.ID}?local_user=root`);
    const url = /visit: (\S+)\n/.exec(actions[0]!.message ?? "")![1]!;
    const path = new URL(url).pathname;
    const session = await webLogin(control!.url, "alice", "alice pw 123", path);
    const page = await (await fetch(url, { headers: { cookie: session } })).text();
    expect(page).toContain("<b>alice@example.com</b> on <b>laptop</b> wants to SSH as <b>root</b> to <b>server1</b>");
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    const approved = await fetch(url, {
      method: "POST",
      headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf, decision: "approve" }).toString(),
    });
    expect(approved.status).toBe(200);
    const r = await first.done;
    expect(r.stderr).toContain("# Lattice SSH requires an additional check.");
    expect(r.stderr).toContain(`# To authenticate, visit: ${url}`);
    expect(r.stdout).toBe("0\n");
    expect(r.code).toBe(0);
    // Within checkPeriod (12 h default): accepted at once, no banner.
    const before = actions.length;
    const again = await ssh(s!.port, "root", ["id", "-u"], { timeoutMs: 30_000 });
    expect(again.stdout).toBe("0\n");
    expect(again.stderr).not.toContain("additional check");
    expect(actions.slice(before)).toEqual([{ accept: true, allowAgentForwarding: true, allowLocalPortForwarding: true, allowRemotePortForwarding: true }]);
  });
});
