// Client authentication is the policy's decision, not the credential's (Tailscale SSH):
// `none` (OpenSSH), a password (paramiko), a public key paramiko signs with (the server
// answers the query phase with PK_OK), keyboard-interactive (ssh2 client) all get in;
// keepalive@openssh.com requests are answered, so ServerAlive-using clients stay connected.
// Also: a session that cannot be started (no setpriv) ends with OpenSSH's 255. Needs root.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireRoot } from "../netns/run-script.js";
import { acceptPolicy, run, ssh, ssh2Client, startServer, type Started } from "./harness.js";

const paramiko = (port: number, auth: string): string =>
  [
    "import paramiko, sys",
    "c = paramiko.SSHClient()",
    "c.set_missing_host_key_policy(paramiko.AutoAddPolicy())",
    `c.connect("127.0.0.1", port=${port}, username="root", look_for_keys=False, allow_agent=False, ${auth})`,
    "_, o, _ = c.exec_command('id -u')",
    "sys.stdout.write(o.read().decode()); sys.exit(o.channel.recv_exit_status())",
  ].join("\n");

describe("client authentication methods", () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    dir = mkdtempSync(join(tmpdir(), "lattice-sshd-auth-"));
  });
  afterAll(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("paramiko with a password attempt", async () => {
    const r = await run("/usr/bin/python3", ["-c", paramiko(s.port, 'password="irrelevant"')]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0\n");
  });

  it("paramiko with a key (public-key query answered, signature accepted)", async () => {
    const key = join(dir, "id_ed25519");
    expect((await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])).code).toBe(0);
    const r = await run("/usr/bin/python3", ["-c", paramiko(s.port, `key_filename=${JSON.stringify(key)}`)]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0\n");
  });

  it("keyboard-interactive only (ssh2 client)", async () => {
    const c = ssh2Client();
    const out = await new Promise<string>((resolve, reject) => {
      c.on("error", reject);
      c.on("ready", () =>
        c.exec("id -u", (err, ch) => {
          if (err) return reject(err);
          let o = "";
          ch.on("data", (d: Buffer) => (o += d));
          ch.on("close", () => {
            c.end();
            resolve(o);
          });
        }),
      );
      c.connect({
        host: "127.0.0.1",
        port: s.port,
        username: "root",
        tryKeyboard: true,
        authHandler: [{ type: "keyboard-interactive", username: "root", prompt: (_n, _i, _l, _p, finish) => finish([]) }],
      });
    });
    expect(out).toBe("0\n");
  });

  it("answers keepalive@openssh.com: a ServerAliveCountMax=1 client survives 4 s of silence", async () => {
    const r = await ssh(s.port, "root", ["sleep 4; echo kept"], { sshArgs: ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"], timeoutMs: 30_000 });
    expect(r.stdout).toBe("kept\n");
    expect(r.code).toBe(0);
  });
});

describe("session start failures", () => {
  it("a session whose process cannot be started exits 255 with the reason", async () => {
    requireRoot();
    const s = await startServer(acceptPolicy(), { setprivPath: "/nonexistent/setpriv" });
    try {
      const r = await ssh(s.port, "root", ["true"]);
      expect(r.code).toBe(255);
      expect(r.stderr).toContain("lattice: cannot start session");
    } finally {
      await s.close();
    }
  });
});
