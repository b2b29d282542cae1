// File transfer, forwarding and multiplexing through the embedded SSH server with stock
// clients: scp (legacy -O and SFTP mode) up and down byte-identical, `sftp -b`, rsync, `ssh -L`,
// `ssh -N -R`, `ssh -A` (the remote side's `ssh-add -l` lists the local agent's key),
// and three sessions over one ControlMaster connection. Needs root and OpenSSH client tools.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireRoot } from "../netns/run-script.js";
import { acceptPolicy, run, ssh, sshOpts, start, startServer, type Started } from "./harness.js";

const sha = (p: string): string => createHash("sha256").update(readFileSync(p)).digest("hex");

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

/** Connects to port, sends `msg`, resolves what comes back before the peer closes. */
function roundTrip(port: number, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(port, "127.0.0.1");
    let got = "";
    c.on("data", (d) => {
      got += d;
      if (got.length >= msg.length) c.end();
    });
    c.on("error", reject);
    c.on("close", () => resolve(got));
    c.write(msg);
  });
}

async function waitFor<T>(f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("SSH transfers, forwarding, agent, multiplexing", () => {
  let s: Started;
  let dir: string;
  let echo: Server;
  let echoPort: number;
  beforeAll(async () => {
    requireRoot();
    s = await startServer(acceptPolicy());
    dir = mkdtempSync(join(tmpdir(), "lattice-sshd-xfer-"));
    echo = createServer((c) => c.pipe(c));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
    echoPort = (echo.address() as { port: number }).port;
  });
  afterAll(async () => {
    echo?.close();
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ["-O", "sftp"] as const) {
    it(`scp ${mode === "-O" ? "-O (legacy scp protocol)" : "(SFTP protocol)"} copies up and down byte-identical`, async () => {
      const src = join(dir, `src${mode}`);
      writeFileSync(src, randomBytes(3 * 1024 * 1024 + 17));
      const flags = mode === "-O" ? ["-O"] : ["-s"];
      const remote = join(dir, `remote${mode}`);
      const up = await run("scp", [...flags, ...sshOpts(s.port).map((a) => (a === "-p" ? "-P" : a)), src, `root@127.0.0.1:${remote}`]);
      expect(up.stderr.replace(/Warning: Permanently added.*\r?\n/g, "")).toBe("");
      expect(up.code).toBe(0);
      expect(sha(remote)).toBe(sha(src));
      const back = join(dir, `back${mode}`);
      const down = await run("scp", [...flags, ...sshOpts(s.port).map((a) => (a === "-p" ? "-P" : a)), `root@127.0.0.1:${remote}`, back]);
      expect(down.code).toBe(0);
      expect(sha(back)).toBe(sha(src));
    });
  }

  it("rsync -e ssh copies a tree and a second run transfers nothing", async () => {
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "sub"), { recursive: true });
    writeFileSync(join(tree, "a.bin"), randomBytes(500_000));
    writeFileSync(join(tree, "sub", "b.txt"), "hello\n");
    const e = ["ssh", ...sshOpts(s.port)].join(" ");
    const dst = join(dir, "tree-copy");
    const r = await run("rsync", ["-a", "--stats", "-e", e, `${tree}/`, `root@127.0.0.1:${dst}/`]);
    expect(r.code).toBe(0);
    expect(sha(join(dst, "a.bin"))).toBe(sha(join(tree, "a.bin")));
    expect(readFileSync(join(dst, "sub", "b.txt"), "utf8")).toBe("hello\n");
    const again = await run("rsync", ["-a", "--stats", "-e", e, `${tree}/`, `root@127.0.0.1:${dst}/`]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/Number of regular files transferred: 0/);
  });

  it("sftp -b runs a batch (put, ls, get, rm)", async () => {
    const src = join(dir, "sftp-src");
    writeFileSync(src, randomBytes(100_000));
    const batch = join(dir, "batch");
    writeFileSync(batch, `put ${src} ${dir}/sftp-remote\nls ${dir}/sftp-remote\nget ${dir}/sftp-remote ${dir}/sftp-back\nrm ${dir}/sftp-remote\n`);
    const r = await run("sftp", ["-b", batch, ...sshOpts(s.port).map((a) => (a === "-p" ? "-P" : a)), "root@127.0.0.1"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${dir}/sftp-remote`);
    expect(sha(join(dir, "sftp-back"))).toBe(sha(src));
  });

  it("ssh -L carries data to the target", async () => {
    const lport = await freePort();
    const fwd = start("ssh", [...sshOpts(s.port), "-N", "-o", "ExitOnForwardFailure=yes", "-L", `${lport}:127.0.0.1:${echoPort}`, "root@127.0.0.1"], { timeoutMs: 30_000 });
    try {
      const got = await waitFor(async () => {
        const g = await roundTrip(lport, "hello through -L");
        return g === "hello through -L" ? g : undefined;
      });
      expect(got).toBe("hello through -L");
    } finally {
      fwd.proc.kill("SIGTERM");
      await fwd.done;
    }
  });

  it("ssh -N -R (no command) carries data back to the client side", async () => {
    const rport = await freePort();
    const fwd = start("ssh", [...sshOpts(s.port), "-N", "-o", "ExitOnForwardFailure=yes", "-R", `${rport}:127.0.0.1:${echoPort}`, "root@127.0.0.1"], { timeoutMs: 30_000 });
    try {
      const got = await waitFor(async () => {
        const g = await roundTrip(rport, "hello through -R");
        return g === "hello through -R" ? g : undefined;
      });
      expect(got).toBe("hello through -R");
    } finally {
      fwd.proc.kill("SIGTERM");
      await fwd.done;
    }
  });

  it("ssh -A: the remote side's ssh-add -l lists the local agent's key", async () => {
    const key = join(dir, "agent-key");
    expect((await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "lattice-agent-test", "-f", key])).code).toBe(0);
    const sock = join(dir, "agent.sock");
    const agent = await run("ssh-agent", ["-a", sock]);
    const pid = /SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1];
    expect(pid).toBeDefined();
    try {
      const env = { ...process.env, SSH_AUTH_SOCK: sock };
      expect((await run("ssh-add", [key], { env })).code).toBe(0);
      const r = await ssh(s.port, "root", ['ssh-add -l; stat -c "%a %U" "$SSH_AUTH_SOCK"'], { env, sshArgs: ["-A"] });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("lattice-agent-test");
      expect(r.stdout).toContain("600 root");
      // Without -A there is no agent on the remote side.
      const no = await ssh(s.port, "root", ['echo "sock=$SSH_AUTH_SOCK"'], { env });
      expect(no.stdout.trim()).toBe("sock=");
    } finally {
      process.kill(Number(pid), "SIGTERM");
    }
  });

  it("three sessions run over one ControlMaster connection", async () => {
    const ctl = join(dir, "ctl.sock");
    const master = await run("ssh", [...sshOpts(s.port), "-o", "ControlMaster=yes", "-o", `ControlPath=${ctl}`, "-fN", "root@127.0.0.1"]);
    expect(master.code).toBe(0);
    const conns = s.server.connectionCount;
    try {
      const rs = await Promise.all(
        [1, 2, 3].map((i) => run("ssh", [...sshOpts(s.port), "-o", `ControlPath=${ctl}`, "root@127.0.0.1", `echo session-${i}`])),
      );
      expect(rs.map((r) => r.stdout.trim())).toEqual(["session-1", "session-2", "session-3"]);
      expect(s.server.connectionCount).toBe(conns);
    } finally {
      await run("ssh", [...sshOpts(s.port), "-o", `ControlPath=${ctl}`, "-O", "exit", "root@127.0.0.1"]);
    }
  });
});
