// The embedded SSH server's sessions, driven by the real OpenSSH client against a server on
// 127.0.0.1:<random> with a fake tailnet backend: sessions run as the mapped local user
// exactly as `login` would (uid, gid, supplementary groups, home, shell, environment),
// exec exit codes, PTY sessions and window changes. Needs root (useradd, setpriv).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireRoot } from "../netns/run-script.js";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptPolicy, run, ssh, ssh2Client, sshOpts, startServer, type Started } from "./harness.js";

const USER = "lattice-sshd-u1";
const GROUP = "lattice-sshd-g1";

describe("SSH sessions as the mapped local user", () => {
  let s: Started;
  beforeAll(async () => {
    requireRoot();
    await run("userdel", ["-r", USER]);
    await run("groupdel", [GROUP]);
    expect((await run("groupadd", [GROUP])).code).toBe(0);
    expect((await run("useradd", ["-m", "-s", "/bin/bash", "-G", GROUP, USER])).code).toBe(0);
    s = await startServer(acceptPolicy());
  });
  afterAll(async () => {
    await s?.close();
    await run("userdel", ["-r", USER]);
    await run("groupdel", [GROUP]);
  });

  it("ssh root@host id -u prints 0", async () => {
    const r = await ssh(s.port, "root", ["id", "-u"]);
    expect(r.stdout).toBe("0\n");
    expect(r.code).toBe(0);
  });

  it("a non-root user's id (uid, gid, supplementary groups) equals `id USER` on the host", async () => {
    const local = await run("id", [USER]);
    expect(local.stdout).toContain(GROUP);
    const r = await ssh(s.port, USER, ["id"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(local.stdout);
  });

  it("the session starts in the user's home with HOME USER LOGNAME SHELL PATH SSH_CONNECTION SSH_CLIENT", async () => {
    const r = await ssh(s.port, USER, ['pwd; echo "$HOME|$USER|$LOGNAME|$SHELL|$SSH_CONNECTION|$SSH_CLIENT"; echo "$PATH"']);
    const [pwd, vars, path] = r.stdout.trim().split("\n");
    expect(pwd).toBe(`/home/${USER}`);
    const [home, user, logname, shell, conn, client] = vars!.split("|");
    expect([home, user, logname, shell]).toEqual([`/home/${USER}`, USER, USER, "/bin/bash"]);
    expect(conn).toMatch(new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${s.port}$`));
    expect(client).toMatch(new RegExp(`^127\\.0\\.0\\.1 \\d+ ${s.port}$`));
    expect(path).toContain("/usr/bin");
  });

  it("exit status propagates (exit 7), unknown command is 127, a signal death is reported", async () => {
    expect((await ssh(s.port, "root", ["exit 7"])).code).toBe(7);
    expect((await ssh(s.port, "root", ["no-such-command-lattice"])).code).toBe(127);
    // OpenSSH exits 255 when the remote command died of a signal.
    const k = await ssh(s.port, "root", ["kill -TERM $$"]);
    expect(k.code).toBe(255);
  });

  it("stdin reaches the command and binary stdout comes back intact", async () => {
    const input = Buffer.from([...Array(256).keys()].map((i) => i % 256)).toString("latin1").repeat(64);
    const r = await ssh(s.port, "root", ["wc -c"], { input });
    expect(r.stdout.trim()).toBe(String(Buffer.byteLength(input)));
  });

  it("ssh -tt gets a PTY: tty, SSH_TTY and TERM are set", async () => {
    const r = await ssh(s.port, USER, ['tty; echo "tty=$SSH_TTY term=$TERM"'], { sshArgs: ["-tt"], env: { ...process.env, TERM: "xterm-256color" } });
    expect(r.code).toBe(0);
    const lines = r.stdout.replace(/\r/g, "").trim().split("\n");
    expect(lines[0]).toMatch(/^\/dev\/pts\/\d+$/);
    expect(lines[1]).toBe(`tty=${lines[0]} term=xterm-256color`);
  });

  it("a PTY shell sees window-change requests (stty size follows)", async () => {
    const conn = ssh2Client();
    const out = await new Promise<string>((resolve, reject) => {
      conn.on("error", reject);
      conn.on("ready", () => {
        conn.shell({ term: "xterm", rows: 24, cols: 80 }, (err, ch) => {
          if (err) return reject(err);
          let buf = "";
          ch.on("data", (d: Buffer) => {
            buf += d.toString();
            if (buf.includes("SIZE1=24 80") && !buf.includes("SIZE2")) {
              ch.setWindow(40, 100, 0, 0);
              setTimeout(() => ch.write("echo SIZE2=$(stty size); exit\n"), 200);
            }
          });
          ch.on("close", () => {
            conn.end();
            resolve(buf);
          });
          ch.write("echo SIZE1=$(stty size)\n");
        });
      });
      conn.connect({ host: "127.0.0.1", port: s.port, username: USER, tryKeyboard: false });
    });
    expect(out).toContain("SIZE1=24 80");
    expect(out).toContain("SIZE2=40 100");
  });

  it("sftp and the forwarded agent socket run/are owned as the non-root user", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-sshd-u-"));
    const sock = join(dir, "agent.sock");
    const agent = await run("ssh-agent", ["-a", sock]);
    const pid = /SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1];
    try {
      writeFileSync(join(dir, "f"), "payload\n");
      const opts = sshOpts(s.port).map((a) => (a === "-p" ? "-P" : a));
      const up = await run("scp", ["-s", ...opts, join(dir, "f"), `${USER}@127.0.0.1:uploaded`]);
      expect(up.code).toBe(0);
      const env = { ...process.env, SSH_AUTH_SOCK: sock };
      const r = await ssh(s.port, USER, ['stat -c "%U %a" ~/uploaded "$SSH_AUTH_SOCK"; ssh-add -l; echo rc=$?'], { env, sshArgs: ["-A"] });
      const lines = r.stdout.trim().split("\n");
      expect(lines[0]).toBe(`${USER} 644`);
      expect(lines[1]).toBe(`${USER} 600`);
      // The user reached the (empty) agent: exit 1 "no identities", not 2 "cannot connect".
      expect(lines.at(-1)).toBe("rc=1");
    } finally {
      if (pid) process.kill(Number(pid), "SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a signal request reaches the command's process group and comes back as exit-signal", async () => {
    const c = ssh2Client();
    const res = await new Promise<{ code: unknown; signal: unknown; out: string }>((resolve, reject) => {
      c.on("error", reject);
      c.on("ready", () =>
        c.exec("echo ready; sleep 30; echo not-reached", (err, ch) => {
          if (err) return reject(err);
          let out = "";
          ch.on("data", (d: Buffer) => {
            out += d;
            if (out.includes("ready")) ch.signal("TERM");
          });
          ch.on("exit", (code: unknown, signal: unknown) => {
            ch.on("close", () => {
              c.end();
              resolve({ code, signal, out });
            });
          });
        }),
      );
      c.connect({ host: "127.0.0.1", port: s.port, username: "root" });
    });
    expect(res.out).toBe("ready\n");
    // bash -c runs `sleep` as a child: the group gets TERM, bash dies of it too.
    expect(res.code === null || res.code === undefined ? res.signal : `code ${String(res.code)}`).toBe("SIGTERM"); // ssh2's client prefixes the wire name "TERM"
  });

  it("a death by a signal outside RFC 4254's list still ends the session (exit 128+n)", async () => {
    const r = await ssh(s.port, "root", ["kill -WINCH $$; kill -SYS $$"]);
    expect(r.code).toBe(128 + 31);
  });

  it("writes one structured log line at session start and one at its end", async () => {
    const before = s.logs.length;
    await ssh(s.port, "root", ["true"]);
    const mine = s.logs.slice(before).filter((l) => String(l.msg).startsWith("ssh session"));
    expect(mine.map((l) => l.msg)).toEqual(["ssh session start", "ssh session end"]);
    expect(mine[1]).toMatchObject({ from: "alice@example.com", node: "laptop", sshUser: "root", localUser: "root", rule: 0, exitCode: 0 });
    expect(typeof mine[1]!.durationMs).toBe("number");
  });

  it("a PTY session writes utmp (who) and wtmp (last) login records; exec without PTY writes none", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-sshd-utmp-"));
    chmodSync(dir, 0o755); // the session user runs `who` on the file
    const utmp = join(dir, "utmp");
    const wtmp = join(dir, "wtmp");
    writeFileSync(utmp, "");
    writeFileSync(wtmp, "");
    const s2 = await startServer(acceptPolicy(), { loginRecords: { utmp, wtmp } });
    try {
      const during = await ssh(s2.port, USER, [`who ${utmp}`], { sshArgs: ["-tt"] });
      expect(during.stdout).toMatch(new RegExp(`^${USER}\\s+pts/\\d+\\s+.*\\(127\\.0\\.0\\.1\\)`));
      const dump = (await run("utmpdump", [wtmp])).stdout.trim().split("\n");
      expect(dump).toHaveLength(2);
      expect(dump[0]).toMatch(new RegExp(`^\\[7\\] .*\\[${USER}\\s*\\] \\[pts/\\d+\\s*\\] \\[127\\.0\\.0\\.1\\s*\\] \\[127\\.0\\.0\\.1\\s*\\]`));
      expect(dump[1]).toMatch(/^\[8\] /);
      expect((await run("who", [utmp])).stdout).toBe("");
      await ssh(s2.port, USER, ["true"]);
      expect((await run("utmpdump", [wtmp])).stdout.trim().split("\n")).toHaveLength(2);
    } finally {
      await s2.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
