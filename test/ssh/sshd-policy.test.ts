// Authorization through the embedded SSH server with the real OpenSSH client: denials carry
// the reason (banner and disconnect), check mode holds the same session until the backend's
// delegate returns Accept (or rejects tagged sources at once), a policy change revokes live
// sessions within 1 s ("Access revoked."), SessionDuration ends sessions. Needs root.
import { afterEach, describe, expect, it } from "vitest";
import type { SSHAction } from "@lattice/types";
import { requireRoot } from "../netns/run-script.js";
import { acceptPolicy, ALICE, run, ssh, start, sshOpts, startServer, type Started } from "./harness.js";

let s: Started | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

describe("SSH denials tell the client why", () => {
  it("root under autogroup:nonroot is refused with the reason naming user, login and host", async () => {
    requireRoot();
    s = await startServer(acceptPolicy({ "*": "=", root: "" }));
    const r = await ssh(s.port, "root", ["id"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("tailnet policy does not permit alice@example.com to SSH as root on server1");
    expect(r.stdout).toBe("");
    expect(s.logs.some((l) => l.msg === "ssh auth denied" && String(l.reason).includes("as root on server1"))).toBe(true);
  });

  it("a user not in any rule is refused", async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    s.backend.srcUser = { ID: 2, LoginName: "bob@example.com", DisplayName: "Bob" };
    const r = await ssh(s.port, "root", ["id"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("tailnet policy does not permit bob@example.com to SSH to server1");
  });

  it("a disallowed local user is refused; a Reject action's message is shown", async () => {
    requireRoot();
    s = await startServer(acceptPolicy({ root: "root" }));
    const r = await ssh(s.port, "nobody", ["id"]);
    expect(r.stderr).toContain("does not permit alice@example.com to SSH as nobody on server1");
    s.backend.policy = { rules: [{ principals: [{ any: true }], sshUsers: { "*": "=" }, action: { reject: true, message: "maintenance window, try later" } }] };
    const r2 = await ssh(s.port, "nobody", ["id"]);
    expect(r2.code).toBe(255);
    expect(r2.stderr).toContain("maintenance window, try later");
  });

  it("a source address that is no tailnet peer never gets a session", async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    s.backend.whois = () => undefined;
    const r = await ssh(s.port, "root", ["id"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("127.0.0.1 is not a node of this tailnet");
  });

  it("a mapped local user that does not exist is refused with that reason", async () => {
    requireRoot();
    s = await startServer(acceptPolicy({ "*": "=" }));
    const r = await ssh(s.port, "no-such-user-lattice", ["id"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('local user "no-such-user-lattice" does not exist on server1');
  });
});

describe("SSH check mode (HoldAndDelegate)", () => {
  const checkPolicy = () => ({
    rules: [{ principals: [{ userLogin: ALICE.LoginName }], sshUsers: { root: "root" }, action: { holdAndDelegate: "https://ctl.example/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?ip=$SRC_NODE_IP&local_user=$LOCAL_USER&u=$SSH_USER" } }],
  });

  it("shows the delegate's message as a banner, waits, and continues the same session on Accept", async () => {
    requireRoot();
    s = await startServer(checkPolicy());
    let calls = 0;
    s.backend.checkHandler = async (url): Promise<SSHAction> => {
      calls++;
      if (calls === 1) return { message: "# Approve this SSH session at: https://ctl.example/a/abc123", holdAndDelegate: url.replace("action", "wait") };
      if (calls === 2) throw new Error("transient network error");
      await new Promise((r) => setTimeout(r, 300));
      return { accept: true };
    };
    const r = await ssh(s.port, "root", ["id", "-u"], { timeoutMs: 30_000 });
    expect(r.stderr).toContain("Approve this SSH session at: https://ctl.example/a/abc123");
    expect(r.stdout).toBe("0\n");
    expect(r.code).toBe(0);
    expect(s.backend.checkUrls[0]).toBe("https://ctl.example/machine/ssh/action/11/to/22?ip=127.0.0.1&local_user=root&u=root");
    expect(s.backend.checkUrls[1]).toContain("/machine/ssh/wait/11/to/22");
  });

  it("a Reject from the delegate ends the attempt with its message", async () => {
    requireRoot();
    s = await startServer(checkPolicy());
    s.backend.checkHandler = async () => ({ reject: true, message: "denied by alice@example.com" });
    const r = await ssh(s.port, "root", ["id"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("denied by alice@example.com");
  });

  it("a tagged source is rejected at once with the reason (no hold, no fetch)", async () => {
    requireRoot();
    s = await startServer({ rules: [{ principals: [{ any: true }], sshUsers: { root: "root" }, action: { holdAndDelegate: "https://ctl.example/x" } }] });
    s.backend.srcNode = { ...s.backend.srcNode, Tags: ["tag:ci"] };
    s.backend.srcUser = null;
    const r = await ssh(s.port, "root", ["id"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("tagged node laptop (tag:ci) cannot give");
    expect(s.backend.checkUrls).toEqual([]);
  });

  it("a check that is never decided times out with a clear message", async () => {
    requireRoot();
    s = await startServer(checkPolicy(), { checkTimeoutMs: 500 });
    s.backend.checkHandler = (_u, signal) => new Promise((_r, rej) => signal.addEventListener("abort", () => rej(new Error("aborted"))));
    const r = await ssh(s.port, "root", ["id"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("check not approved within");
  });
});

describe("live sessions follow the policy", () => {
  it("removing the rule ends a running exec and a PTY shell within 1 s with \"Access revoked.\"", async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    const execSess = start("ssh", [...sshOpts(s.port), "root@127.0.0.1", "echo started; sleep 60"], { timeoutMs: 30_000 });
    const ptySess = start("ssh", [...sshOpts(s.port), "-tt", "root@127.0.0.1"], { timeoutMs: 30_000, keepStdin: true, input: "echo pty-started\n" });
    let out = "";
    execSess.proc.stdout!.on("data", (d) => (out += d));
    let ptyOut = "";
    ptySess.proc.stdout!.on("data", (d) => (ptyOut += d));
    const deadline = Date.now() + 15_000;
    while (!(out.includes("started") && ptyOut.includes("pty-started")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain("started");
    const t0 = Date.now();
    s.backend.setPolicy({ rules: [] });
    const [e, p] = await Promise.all([execSess.done, ptySess.done]);
    const elapsed = Date.now() - t0;
    expect(e.stderr).toContain("Access revoked.");
    expect(p.stdout).toContain("Access revoked.");
    expect(e.code).not.toBe(0);
    expect(elapsed).toBeLessThan(1000);
    expect(s.server.stats.revoked).toBe(2);
  });

  it("a backend that throws during the re-check fails closed (session revoked, server keeps running)", async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    const sess = start("ssh", [...sshOpts(s.port), "root@127.0.0.1", "echo started; sleep 30"], { timeoutMs: 30_000 });
    let out = "";
    sess.proc.stdout!.on("data", (d) => (out += d));
    let ended = false;
    void sess.done.then(() => (ended = true));
    while (!out.includes("started") && !ended) await new Promise((r) => setTimeout(r, 50));
    if (!out.includes("started")) throw new Error(`session never started: ${JSON.stringify(await sess.done)}`);
    s.backend.whois = () => {
      throw new Error("netmap being swapped");
    };
    expect(() => s!.backend.setPolicy(acceptPolicy())).not.toThrow();
    const r = await sess.done;
    expect(r.stderr).toContain("Access revoked.");
  });

  it("a policy change that still allows the session keeps it", async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    const sess = start("ssh", [...sshOpts(s.port), "root@127.0.0.1", "sleep 1; echo survived"], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 400));
    s.backend.setPolicy(acceptPolicy({ root: "root" }));
    const r = await sess.done;
    expect(r.stdout).toBe("survived\n");
    expect(r.code).toBe(0);
  });

  it("SessionDuration ends the session with \"Session timeout of 1s elapsed.\"", async () => {
    requireRoot();
    s = await startServer(acceptPolicy(undefined, { sessionDuration: 1e9 }));
    const r = await ssh(s.port, "root", ["sleep 20"], { timeoutMs: 15_000 });
    expect(r.stderr).toContain("Session timeout of 1s elapsed.");
    expect(r.code).not.toBe(0);
  });
});
