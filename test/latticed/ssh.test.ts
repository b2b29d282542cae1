// Lattice SSH end to end: real lattice-control, two real latticed in network namespaces —
// A (alice's, the client) and B (tag:server via a tagged auth key, `RunSSH`), plus the
// host's own /usr/sbin/sshd on 0.0.0.0:22 inside B's namespace with its own host key —
// driven with the stock OpenSSH client from A against B's tailnet address. Proves the
// port-22 diversion (tailnet :22 → the embedded server, with the peer's true address;
// the LAN :22 and RunSSH-off still reach the host sshd), identity and policy from the
// netmap, sessions as the mapped user, transfers, forwarding, denial, revocation, and
// `lattice ssh` with host keys from the netmap.
import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO, World, localApi, requireRoot, run, waitFor } from "./harness.js";

interface Res {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv in namespace `ns`, resolving with the exit code and output (never throws on exit ≠ 0). */
function inNs(ns: string, argv: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const p = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

const BASE_OPTS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"];
// ssh takes the first value of an option: LogLevel goes first.
const SSH_OPTS = ["-o", "LogLevel=ERROR", ...BASE_OPTS];

const sha256 = (f: string): string => createHash("sha256").update(fs.readFileSync(f)).digest("hex");

describe("Lattice SSH in network namespaces (OpenSSH client → latticed --ssh)", () => {
  const w = new World();
  const user = `lts${w.id}`.slice(0, 20);
  const group = `ltg${w.id}`.slice(0, 20);
  let userAdded = false;
  let groupAdded = false;
  let ctl: Awaited<ReturnType<World["control"]>>;
  let a: { ns: string; lanIp: string };
  let b: { ns: string; lanIp: string };
  let da: ReturnType<World["latticed"]>;
  let db: ReturnType<World["latticed"]>;
  let ipB = "";
  let ip6B = "";
  let policyFile = "";
  let hostSshdKey = "";
  const ssh = (target: string, ...cmd: string[]): Promise<Res> => inNs(a.ns, ["ssh", ...SSH_OPTS, target, ...cmd]);
  // Denials: the reason arrives as an auth banner and in the DISCONNECT, both shown at LogLevel INFO.
  const sshInfo = (target: string, ...cmd: string[]): Promise<Res> => inNs(a.ns, ["ssh", "-o", "LogLevel=INFO", ...BASE_OPTS, target, ...cmd]);
  const policy = (users: string[]) =>
    JSON.stringify({
      tagOwners: { "tag:server": ["alice@"] },
      acls: [{ action: "accept", src: ["alice@"], dst: ["tag:server:22"] }],
      ssh: [{ action: "accept", src: ["alice@"], dst: ["tag:server"], users }],
    });

  afterAll(async () => {
    await w.cleanup();
    if (userAdded) run("userdel", ["-r", user]);
    if (groupAdded) run("groupdel", [group]);
  });

  it("setup: A (alice) and B (tag:server, --ssh) join; B publishes its SSH host keys; a host sshd runs in B's namespace", async () => {
    requireRoot();
    w.lan();
    ctl = await w.control();
    ctl.admin("users", "create", "alice", "--password", "correct-horse-battery");
    policyFile = path.join(w.dir, "policy.hujson");
    fs.writeFileSync(policyFile, policy(["root", "autogroup:nonroot"]));
    ctl.admin("policy", "set", policyFile);
    const userKey = ctl.admin("keys", "create", "--user", "alice", "--preapproved");
    const serverKey = ctl.admin("keys", "create", "--user", "alice", "--preapproved", "--tags", "tag:server");
    a = w.nodeNs("a");
    b = w.nodeNs("b");
    da = w.latticed("a", a.ns);
    db = w.latticed("b", b.ns);
    for (const d of [da, db]) await waitFor("LocalAPI up", 20_000, () => localApi(d.socket, "GET", "/localapi/v0/status").catch(() => null));
    expect((await localApi(da.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: userKey, Hostname: "laptop" })).status).toBe(200);
    expect((await localApi(db.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: serverKey, Hostname: "server", RunSSH: true })).status).toBe(200);
    const sb = await waitFor("B running", 30_000, async () => {
      const s = await localApi(db.socket, "GET", "/localapi/v0/status");
      return s.body.BackendState === "Running" && s.body.TailscaleIPs?.length ? s.body : null;
    });
    ipB = sb.TailscaleIPs[0];
    ip6B = sb.TailscaleIPs.find((x: string) => x.includes(":")) ?? "";
    // A sees B with B's published host keys (Hostinfo sshHostKeys → status PeerStatus).
    const peerB = await waitFor("A sees B's SSH host keys", 30_000, async () => {
      const s = await localApi(da.socket, "GET", "/localapi/v0/status");
      return Object.values((s.body.Peer ?? {}) as Record<string, any>).find((p) => p.TailscaleIPs?.includes(ipB) && p.sshHostKeys?.length >= 3);
    });
    expect(peerB.sshHostKeys.map((k: string) => k.split(" ")[0]).sort()).toEqual(["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]);
    // The host's own sshd, listening on 0.0.0.0:22 in B's namespace, with its own host key.
    const keyFile = path.join(w.dir, "host_sshd_ed25519");
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
    hostSshdKey = fs.readFileSync(`${keyFile}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
    const cfg = path.join(w.dir, "host_sshd_config");
    fs.writeFileSync(cfg, [`Port 22`, `ListenAddress 0.0.0.0`, `HostKey ${keyFile}`, `PidFile ${path.join(w.dir, "host_sshd.pid")}`, "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "AuthorizedKeysFile none", ""].join("\n"));
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    w.spawn("host-sshd", b.ns, ["/usr/sbin/sshd", "-D", "-e", "-f", cfg]);
    await waitFor("host sshd listening", 10_000, async () => (await inNs(b.ns, ["ss", "-Hltn", "sport = :22"])).stdout.includes("0.0.0.0:22"));
    // Wait for B's SSH server (tailnet :22 diverted) to answer A with Lattice's ident.
    await waitFor("Lattice SSH answers on B's tailnet :22", 30_000, async () => (await inNs(a.ns, ["ssh-keyscan", "-T", "3", "-t", "ed25519", ipB])).stdout.includes("ssh-ed25519"));
  }, 180_000);

  it("ssh root@B id -u → 0 (IPv4 and IPv6, SSH_CONNECTION shows port 22); exit codes propagate (exit 7, 127 for an unknown command)", async () => {
    requireRoot();
    const r = await ssh(`root@${ipB}`, "id", "-u");
    expect(r.stderr).toBe("");
    expect(r).toMatchObject({ code: 0, stdout: "0\n" });
    expect((await ssh(`root@${ipB}`, "exit 7")).code).toBe(7);
    // IPv6: the diversion rewrites TCP over IPv6 too.
    expect(ip6B).toMatch(/^fd7a:/);
    expect(await ssh(`root@${ip6B}`, "echo", "$SSH_CONNECTION")).toMatchObject({ code: 0, stdout: expect.stringMatching(/^fd7a:\S+ \d+ fd7a:\S+ 22\n$/) });
    expect((await ssh(`root@${ipB}`, "no-such-command-lattice")).code).toBe(127);
    // B's log: the session's identity is A's node (the true source address, not a local one).
    expect(w.log("b").split("\n").some((l) => l.includes('"msg":"ssh connection"') && l.includes("laptop"))).toBe(true);
  }, 60_000);

  it("a non-root user (autogroup:nonroot) gets exactly `id USER` on B, supplementary groups included", async () => {
    requireRoot();
    run("groupadd", [group]);
    groupAdded = true;
    run("useradd", ["-m", "-s", "/bin/sh", "-G", group, user]);
    userAdded = true;
    const want = run("id", [user]).trim();
    expect(want).toContain(group);
    const r = await ssh(`${user}@${ipB}`, "id");
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(want);
  }, 60_000);

  it("scp -O (legacy) and scp (SFTP) of a 64 MiB file, up and down, byte-identical", async () => {
    requireRoot();
    const src = path.join(w.dir, "big.bin");
    fs.writeFileSync(src, randomBytes(64 << 20));
    const want = sha256(src);
    const scp = (...args: string[]) => inNs(a.ns, ["scp", ...SSH_OPTS, "-q", ...args], { timeoutMs: 240_000 });
    for (const [mode, flags] of [["legacy", ["-O"]], ["sftp", ["-s"]]] as const) {
      const remote = path.join(w.dir, `up-${mode}.bin`);
      const back = path.join(w.dir, `down-${mode}.bin`);
      const t0 = Date.now();
      const up = await scp(...flags, src, `root@${ipB}:${remote}`);
      const t1 = Date.now();
      expect(up.code, up.stderr).toBe(0);
      expect(sha256(remote)).toBe(want);
      const down = await scp(...flags, `root@${ipB}:${remote}`, back);
      const t2 = Date.now();
      expect(down.code, down.stderr).toBe(0);
      expect(sha256(back)).toBe(want);
      console.log(`scp ${mode}: 64 MiB up ${(t1 - t0) / 1000}s (${((64 * 8) / ((t1 - t0) / 1000)).toFixed(0)} Mbit/s), down ${(t2 - t1) / 1000}s`);
      fs.rmSync(remote);
      fs.rmSync(back);
    }
  }, 600_000);

  it("ssh -L carries data both ways to a service on B's loopback", async () => {
    requireRoot();
    // An echo service on B's 127.0.0.1 (not reachable from A except through the forward).
    const echoPort = 20_000 + Math.floor(Math.random() * 10_000);
    w.spawn("echo", b.ns, ["ncat", "-l", "127.0.0.1", String(echoPort), "-k", "-c", "cat"]);
    await waitFor("echo service", 10_000, async () => (await inNs(b.ns, ["ss", "-Hltn", `sport = :${echoPort}`])).stdout.includes("127.0.0.1"));
    const lport = 30_000 + Math.floor(Math.random() * 10_000);
    const fwd = w.spawn("ssh-L", a.ns, ["ssh", ...SSH_OPTS, "-N", "-L", `127.0.0.1:${lport}:127.0.0.1:${echoPort}`, `root@${ipB}`]);
    await waitFor("forward listening on A", 20_000, async () => (await inNs(a.ns, ["ss", "-Hltn", `sport = :${lport}`])).stdout.includes("127.0.0.1"));
    const token = randomBytes(12).toString("hex");
    // A client on A: connect, send the token, wait for it to come back (5 s), print it.
    const client = `const s=require("net").connect(${lport},"127.0.0.1",()=>s.write("${token}\\n"));let b="";s.on("data",d=>{b+=d;if(b.includes("\\n")){process.stdout.write(b);process.exit(0)}});s.on("error",e=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),5000)`;
    const r = await waitFor("echo through the forward", 20_000, async () => {
      const x = await inNs(a.ns, [process.execPath, "-e", client]);
      return x.stdout.includes(token) ? x : null;
    });
    expect(r.stdout).toBe(`${token}\n`);
    await World.stop(fwd);
  }, 60_000);

  it("denial with the reason: a local user that does not exist", async () => {
    requireRoot();
    const r = await sshInfo(`nosuchuser${w.id}@${ipB}`, "true");
    expect(r.code).toBe(255);
    expect(r.stderr).toContain(`local user "nosuchuser${w.id}" does not exist`);
  }, 60_000);

  it("hostile clients on the new listener: a local connection to the internal port is closed unanswered; garbage at tailnet :22 is dropped and others are still served", async () => {
    requireRoot();
    const m = /"port":(\d+)[^\n]*SSH server listening/.exec(w.log("b"));
    expect(m, "B logs the internal port").not.toBeNull();
    const port = m![1]!;
    // A local process on B reaching <tailnet IP>:P directly (no diverted SYN): no SSH banner.
    const local = await inNs(b.ns, ["sh", "-c", `ncat -w 3 --recv-only ${ipB} ${port} </dev/null; echo "rc=$?"`]);
    expect(local.stdout).not.toContain("SSH-2.0");
    // Garbage from A at tailnet :22.
    const junk = await inNs(a.ns, ["sh", "-c", `head -c 65536 /dev/urandom | ncat -w 3 ${ipB} 22 | head -c 100 | od -c | head -2; true`]);
    expect(junk.code).toBe(0);
    const metrics = await localApi(db.socket, "GET", "/localapi/v0/metrics");
    expect(String(metrics.body)).toMatch(/latticed_ssh_divert_events_total\{event="refused_undiverted"\} [1-9]/);
    expect((await ssh(`root@${ipB}`, "echo", "still-here")).stdout).toBe("still-here\n");
  }, 60_000);

  it("a spoofed source (A sends from a tailnet address that is not its own) never reaches the SSH server", async () => {
    requireRoot();
    const spoof = "100.64.0.250";
    run("ip", ["-n", a.ns, "addr", "add", `${spoof}/32`, "dev", "lattice0"]);
    try {
      const notAllowed = async () => Number(/latticed_wireguard_drops_total\{reason="sourceNotAllowed"\} (\d+)/.exec((await localApi(db.socket, "GET", "/localapi/v0/metrics")).body as string)?.[1] ?? "NaN");
      const before = await notAllowed();
      const r = await inNs(a.ns, ["ssh", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=4", ...BASE_OPTS, "-b", spoof, `root@${ipB}`, "id", "-u"]);
      expect(r.code).toBe(255);
      expect(r.stdout).toBe("");
      // B's WireGuard device dropped the SYNs: the source is not in A's AllowedIPs.
      expect(await notAllowed()).toBeGreaterThan(before);
      expect(w.log("b")).not.toContain(spoof);
    } finally {
      run("ip", ["-n", a.ns, "addr", "del", `${spoof}/32`, "dev", "lattice0"]);
    }
  }, 60_000);

  it("the host sshd still answers on B's LAN address with its own host key; with RunSSH off, tailnet :22 reaches it too", async () => {
    requireRoot();
    const lan = await inNs(a.ns, ["ssh-keyscan", "-T", "5", "-t", "ed25519", b.lanIp]);
    expect(lan.stdout).toContain(hostSshdKey);
    const tail = await inNs(a.ns, ["ssh-keyscan", "-T", "5", "-t", "ed25519", ipB]);
    expect(tail.stdout).toContain("ssh-ed25519");
    expect(tail.stdout).not.toContain(hostSshdKey);
    const tOff = Date.now();
    expect((await localApi(db.socket, "PATCH", "/localapi/v0/prefs", { RunSSH: false })).status).toBe(200);
    await waitFor("tailnet :22 reaches the host sshd", 15_000, async () => (await inNs(a.ns, ["ssh-keyscan", "-T", "3", "-t", "ed25519", ipB])).stdout.includes(hostSshdKey));
    const tOn = Date.now();
    expect((await localApi(db.socket, "PATCH", "/localapi/v0/prefs", { RunSSH: true })).status).toBe(200);
    await waitFor("Lattice SSH back on tailnet :22", 15_000, async () => {
      const s = (await inNs(a.ns, ["ssh-keyscan", "-T", "3", "-t", "ed25519", ipB])).stdout;
      return s.includes("ssh-ed25519") && !s.includes(hostSshdKey);
    });
    console.log(`RunSSH off → host sshd on tailnet :22 after ${tOn - tOff} ms; on → Lattice SSH after ${Date.now() - tOn} ms`);
  }, 90_000);

  it("lattice ssh root@server: known_hosts from the netmap with strict checking", async () => {
    requireRoot();
    const r = await inNs(a.ns, [process.execPath, path.join(REPO, "cli/bin/lattice.js"), "--socket", da.socket, "ssh", "root@server", "id", "-u"]);
    expect(r.stderr).toBe("");
    expect(r).toMatchObject({ code: 0, stdout: "0\n" });
    const seven = await inNs(a.ns, [process.execPath, path.join(REPO, "cli/bin/lattice.js"), "--socket", da.socket, "ssh", "root@server", "exit 7"]);
    expect(seven.code).toBe(7);
  }, 60_000);

  it("Kamal's SSH stack (SSHKit Netssh as root, keepalive, password attempt), with and without the ed25519 gem: execute, capture, test, upload! of 20 MiB, 30 concurrent connection starts, pooled reuse (once after 60 s idle), a remote port forward (net-ssh forward.remote)", async () => {
    requireRoot();
    const src = path.join(w.dir, "kamal.bin");
    fs.writeFileSync(src, randomBytes(20 << 20));
    const remote = path.join(w.dir, "kamal-up.bin");
    for (const noEd25519 of [false, true]) {
      fs.rmSync(remote, { force: true });
      const r = await inNs(a.ns, ["ruby", path.join(REPO, "test/latticed/kamal-sshkit.rb"), ipB, src, remote], { timeoutMs: 180_000, env: noEd25519 ? { LATTICE_NO_ED25519: "1" } : { LATTICE_IDLE_S: "60" } });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      // With the ed25519 gem net-ssh picks ed25519; without it, ECDSA or RSA (rsa-sha2-*).
      expect(r.stdout).toMatch(noEd25519 ? /^ok (ecdsa-sha2-nistp256|rsa-sha2-512|rsa-sha2-256)\n$/ : /^ok ssh-ed25519\n$/);
      console.log(`kamal-sshkit (ed25519 gem ${noEd25519 ? "hidden" : "present"}${noEd25519 ? "" : ", 60 s idle"}): ${r.stdout.trim()}`);
      expect(sha256(remote)).toBe(sha256(src));
    }
  }, 300_000);

  it("Ansible with its default OpenSSH connection (ControlPersist, sftp): ping, copy, shell as root", async () => {
    requireRoot();
    const home = path.join(w.dir, "ansible");
    fs.mkdirSync(home, { recursive: true, mode: 0o700 });
    const inv = path.join(home, "inventory");
    fs.writeFileSync(inv, `server ansible_host=${ipB} ansible_user=root ansible_python_interpreter=/usr/bin/python3\n`);
    const env = { ANSIBLE_HOME: home, ANSIBLE_LOCAL_TEMP: path.join(home, "tmp"), ANSIBLE_HOST_KEY_CHECKING: "False", ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(home, "cp"), ANSIBLE_NOCOLOR: "1", ANSIBLE_CONFIG: path.join(home, "none.cfg") };
    const ansible = (...args: string[]) => inNs(a.ns, ["ansible", "all", "-i", inv, ...args], { env, timeoutMs: 120_000 });
    const ping = await ansible("-m", "ping");
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    expect(ping.stdout).toMatch(/"ping": "pong"/);
    const src = path.join(home, "payload.txt");
    fs.writeFileSync(src, `lattice ${w.id}\n`);
    const dest = path.join(w.dir, "ansible-copied.txt");
    const copy = await ansible("-m", "copy", "-a", `src=${src} dest=${dest} mode=0600`);
    expect(copy.code, copy.stdout + copy.stderr).toBe(0);
    expect(fs.readFileSync(dest, "utf8")).toBe(`lattice ${w.id}\n`);
    const shell = await ansible("-m", "shell", "-a", "id -u; hostname");
    expect(shell.code, shell.stdout + shell.stderr).toBe(0);
    expect(shell.stdout).toMatch(/CHANGED \| rc=0 >>\n0\n/);
  }, 300_000);

  it("OpenSSH through latticed: ssh -tt sees a window-size change, sftp -b, rsync -e ssh, ssh -N -R carries data, ssh -A lists A's agent key on B, three sessions over one ControlMaster connection", async () => {
    requireRoot();
    const t0 = Date.now();
    // As the non-root user (shell /bin/sh, fresh home): root's ~/.bashrc on a shared test
    // machine may block (bash sources it for every SSH command), which would test the machine.
    const to = `${user}@${ipB}`;
    const home = run("getent", ["passwd", user]).split(":")[5]!;
    // -tt from a real terminal on A, resized mid-session (24x80 → 40x132).
    const tty = await inNs(a.ns, ["/usr/bin/python3", path.join(REPO, "test/latticed/pty-resize.py"), "ssh", "-tt", ...SSH_OPTS, to, "echo SIZE1=$(stty size)=; read x; echo SIZE2=$(stty size)="], { timeoutMs: 60_000 });
    expect(tty.stderr).toBe("");
    expect(tty.stdout).toBe("24 80|40 132|0\n");
    // sftp -b: put, get, ls, rm in one batch.
    const src = path.join(w.dir, "sftp-src.bin");
    fs.writeFileSync(src, randomBytes(3 << 20));
    const remote = path.join(home, "sftp-remote.bin");
    const back = path.join(w.dir, "sftp-back.bin");
    const batch = path.join(w.dir, "sftp.batch");
    fs.writeFileSync(batch, [`put ${src} ${remote}`, `get ${remote} ${back}`, `ls -l ${remote}`, `rm ${remote}`, ""].join("\n"));
    const sftp = await inNs(a.ns, ["sftp", ...SSH_OPTS, "-b", batch, to]);
    expect(sftp.code, sftp.stderr).toBe(0);
    expect(sha256(back)).toBe(sha256(src));
    expect(fs.existsSync(remote)).toBe(false);
    // rsync -e ssh: a small tree up, then an incremental run transfers nothing.
    const tree = path.join(w.dir, "rsync-src");
    fs.mkdirSync(path.join(tree, "sub"), { recursive: true });
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(tree, i % 2 ? "sub" : "", `f${i}`), randomBytes(10_000 + i));
    const dest = path.join(home, "rsync-dest");
    const rsh = ["ssh", ...SSH_OPTS].join(" ");
    const rs = await inNs(a.ns, ["rsync", "-a", "--stats", "-e", rsh, `${tree}/`, `${to}:${dest}/`]);
    expect(rs.code, rs.stderr).toBe(0);
    expect(rs.stdout).toMatch(/Number of regular files transferred: 20/);
    for (let i = 0; i < 20; i++) {
      const f = path.join(i % 2 ? "sub" : "", `f${i}`);
      expect(sha256(path.join(dest, f))).toBe(sha256(path.join(tree, f)));
    }
    const rs2 = await inNs(a.ns, ["rsync", "-a", "--stats", "-e", rsh, `${tree}/`, `${to}:${dest}/`]);
    expect(rs2.code, rs2.stderr).toBe(0);
    expect(rs2.stdout).toMatch(/Number of regular files transferred: 0/);
    // ssh -N -R: a service on A's loopback reached from B's loopback through the reverse forward.
    const echoPort = 20_000 + Math.floor(Math.random() * 10_000);
    const echo = w.spawn("echo-a", a.ns, ["ncat", "-l", "127.0.0.1", String(echoPort), "-k", "-c", "cat"]);
    await waitFor("echo service on A", 10_000, async () => (await inNs(a.ns, ["ss", "-Hltn", `sport = :${echoPort}`])).stdout.includes("127.0.0.1"));
    const rport = 30_000 + Math.floor(Math.random() * 10_000);
    const fwd = w.spawn("ssh-R", a.ns, ["ssh", ...SSH_OPTS, "-N", "-o", "ExitOnForwardFailure=yes", "-R", `127.0.0.1:${rport}:127.0.0.1:${echoPort}`, to]);
    await waitFor("remote forward listening on B", 20_000, async () => (await inNs(b.ns, ["ss", "-Hltn", `sport = :${rport}`])).stdout.includes("127.0.0.1"));
    const token = randomBytes(12).toString("hex");
    const client = `const s=require("net").connect(${rport},"127.0.0.1",()=>s.write("${token}\\n"));let b="";s.on("data",d=>{b+=d;if(b.includes("\\n")){process.stdout.write(b);process.exit(0)}});s.on("error",e=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),5000)`;
    const viaR = await inNs(b.ns, [process.execPath, "-e", client]);
    expect(viaR).toMatchObject({ code: 0, stdout: `${token}\n` });
    await World.stop(fwd);
    await World.stop(echo);
    // ssh -A: an agent on A holding a key; `ssh-add -l` on B lists it through the forwarded agent.
    const agentSock = path.join(w.dir, "agent.sock");
    w.spawn("ssh-agent", a.ns, ["ssh-agent", "-D", "-a", agentSock]);
    await waitFor("ssh-agent socket", 10_000, () => fs.existsSync(agentSock));
    const key = path.join(w.dir, "agent_key");
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `agent-${w.id}`, "-f", key]);
    const agentEnv = { SSH_AUTH_SOCK: agentSock };
    expect((await inNs(a.ns, ["ssh-add", key], { env: agentEnv })).code).toBe(0);
    const fp = run("ssh-keygen", ["-l", "-f", `${key}.pub`]).split(" ")[1]!;
    const listed = await inNs(a.ns, ["ssh", "-A", ...SSH_OPTS, to, "ssh-add", "-l"], { env: agentEnv });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(fp);
    expect(listed.stdout).toContain(`agent-${w.id}`);
    // Without -A there is no agent on B.
    expect((await inNs(a.ns, ["ssh", ...SSH_OPTS, to, "ssh-add", "-l"], { env: agentEnv })).code).toBe(2);
    // ControlMaster: one master, three concurrent sessions multiplexed over its connection
    // (all three see the master's source port in SSH_CONNECTION).
    const cp = path.join(w.dir, "cm.sock");
    const master = w.spawn("ssh-master", a.ns, ["ssh", ...SSH_OPTS, "-M", "-S", cp, "-N", to]);
    await waitFor("ControlMaster socket", 20_000, () => fs.existsSync(cp));
    const muxed = await Promise.all([1, 2, 3].map((i) => inNs(a.ns, ["ssh", ...SSH_OPTS, "-S", cp, "-o", "ControlMaster=no", to, `sleep 1; echo ${i} $SSH_CONNECTION`])));
    const conns = muxed.map((r, i) => {
      expect(r.code, r.stderr).toBe(0);
      const m = new RegExp(`^${i + 1} (\\S+ \\d+) \\S+ 22\n$`).exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      return m![1];
    });
    expect(new Set(conns).size).toBe(1);
    expect((await inNs(a.ns, ["ssh", "-S", cp, "-O", "check", to])).code).toBe(0);
    await World.stop(master);
    console.log(`OpenSSH extras (pty resize, sftp -b, rsync, -R, -A, ControlMaster): ${Date.now() - t0} ms`);
  }, 180_000);

  it("paramiko and asyncssh (the system python3's) each run a command through latticed, once with a password attempt and once with a key", async () => {
    requireRoot();
    const key = path.join(w.dir, "py_key");
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    // As the non-root user: root's ~/.bashrc on a shared test machine may block.
    const r = await inNs(a.ns, ["/usr/bin/python3", path.join(REPO, "test/latticed/py-clients.py"), ipB, user, key]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(["paramiko password", "paramiko key", "asyncssh password", "asyncssh key"].map((m) => `${m}: ${user} rc=3\n`).join(""));
  }, 60_000);

  it("thousands of half-open connections from another node (1000 SYN-only, 1000 that never send a banner) while A still gets sessions; truncated and oversized SSH packets are dropped", async () => {
    requireRoot();
    const t0 = Date.now();
    // A third node of alice's, the flooder.
    const c = w.nodeNs("c");
    const dc = w.latticed("c", c.ns);
    await waitFor("LocalAPI up (C)", 20_000, () => localApi(dc.socket, "GET", "/localapi/v0/status").catch(() => null));
    const keyC = ctl.admin("keys", "create", "--user", "alice", "--preapproved");
    expect((await localApi(dc.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: keyC, Hostname: "flooder" })).status).toBe(200);
    await waitFor("C reaches B's SSH", 30_000, async () => (await inNs(c.ns, ["ssh-keyscan", "-T", "3", "-t", "ed25519", ipB])).stdout.includes("ssh-ed25519"));
    // SYN-only: C's kernel never sees B's SYN-ACKs, so B holds 1000 half-open handshakes.
    run("ip", ["netns", "exec", c.ns, "iptables", "-I", "INPUT", "-p", "tcp", "-s", ipB, "--sport", "22", "--tcp-flags", "SYN,ACK", "SYN,ACK", "-j", "DROP"]);
    const syn = spawn("ip", ["netns", "exec", c.ns, "sh", "-c", `ulimit -n 8192; exec ${process.execPath} ${path.join(REPO, "test/latticed/half-open.mjs")} ${ipB} 22 1000`], { stdio: ["pipe", "pipe", "pipe"] });
    w.procs.push(syn);
    await new Promise((r) => setTimeout(r, 2_000));
    run("ip", ["netns", "exec", c.ns, "iptables", "-D", "INPUT", "-p", "tcp", "-s", ipB, "--sport", "22", "--tcp-flags", "SYN,ACK", "SYN,ACK", "-j", "DROP"]);
    // Connected but silent: the server holds at most 64 unauthenticated per peer, refuses the rest.
    const silent = spawn("ip", ["netns", "exec", c.ns, "sh", "-c", `ulimit -n 8192; exec ${process.execPath} ${path.join(REPO, "test/latticed/half-open.mjs")} ${ipB} 22 1000`], { stdio: ["pipe", "pipe", "pipe"] });
    w.procs.push(silent);
    let silentOut = "";
    silent.stdout.on("data", (d) => (silentOut += d));
    await waitFor("silent connections settled", 30_000, () => /open \d+/.test(silentOut));
    // Meanwhile A: sessions work, several in a row.
    for (let i = 0; i < 3; i++) expect(await ssh(`${user}@${ipB}`, "echo", `ok${i}`)).toMatchObject({ code: 0, stdout: `ok${i}\n` });
    const counter = async (ev: string) => Number(new RegExp(`latticed_ssh_server_events_total\\{event="${ev}"\\} (\\d+)`).exec(String((await localApi(db.socket, "GET", "/localapi/v0/metrics")).body))?.[1] ?? "0");
    expect(await counter("refused_over_limit")).toBeGreaterThan(900);
    const errorsBefore = await counter("protocol_errors");
    // Truncated and oversized packets after a valid identification line.
    const bad = (hex: string) => inNs(a.ns, ["sh", "-c", `{ printf 'SSH-2.0-x\\r\\n'; printf '${hex}'; sleep 1; } | ncat -w 3 ${ipB} 22 | head -c 200 | wc -c`]);
    await bad("\\000\\000\\004\\000\\012\\024abc"); // length 1024, 5 bytes then EOF
    await bad("\\177\\377\\377\\377\\000\\024abcdef"); // length 2^31-1
    await bad("\\000\\000\\000\\000"); // length 0
    expect(await ssh(`${user}@${ipB}`, "echo", "after-bad")).toMatchObject({ code: 0, stdout: "after-bad\n" });
    // The oversized and zero lengths are protocol errors (the truncated one ends at EOF).
    expect(await counter("protocol_errors")).toBeGreaterThanOrEqual(errorsBefore + 2);
    const metrics = String((await localApi(db.socket, "GET", "/localapi/v0/metrics")).body);
    console.log(`half-open: silent ${silentOut.trim()}; ${Date.now() - t0} ms; ssh metrics: ${metrics.split("\n").filter((l) => l.startsWith("latticed_ssh") && !l.includes(" 0")).join("; ")}`);
    syn.stdin.end();
    silent.stdin.end();
    await World.stop(dc.proc);
  }, 120_000);

  it("check mode through latticed: the banner shows the approval URL (fetched over B's Noise channel), approving on the control's page continues the same session; within checkPeriod no new check", async () => {
    requireRoot();
    fs.writeFileSync(
      policyFile,
      JSON.stringify({
        tagOwners: { "tag:server": ["alice@"] },
        acls: [{ action: "accept", src: ["alice@"], dst: ["tag:server:22"] }],
        ssh: [
          { action: "check", src: ["alice@"], dst: ["tag:server"], users: [user] },
          { action: "accept", src: ["alice@"], dst: ["tag:server"], users: ["root", "autogroup:nonroot"] },
        ],
      }),
    );
    ctl.admin("policy", "set", policyFile);
    // Policy changes reach B within ~0.3 s here (see the revocation figure); 3 s of margin.
    await new Promise((r) => setTimeout(r, 3_000));
    const p = spawn("ip", ["netns", "exec", a.ns, "ssh", "-o", "LogLevel=INFO", ...BASE_OPTS, `${user}@${ipB}`, "id", "-un"], { stdio: ["ignore", "pipe", "pipe"] });
    w.procs.push(p);
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const done = new Promise<number | null>((r) => p.on("close", (c) => r(c)));
    const url = await waitFor("the check banner with the URL", 20_000, () => /visit: (\S+)/.exec(err)?.[1]);
    expect(url).toMatch(new RegExp(`^${ctl.url}/ssh/check/\\S+$`));
    const approve = await inNs(w.ns("ctl"), [process.execPath, path.join(REPO, "test/latticed/approve-check.mjs"), url, "alice", "correct-horse-battery", "approve"]);
    expect(approve.code, approve.stderr).toBe(0);
    expect(approve.stdout).toMatch(new RegExp(`wants to SSH as ${user} to server`));
    expect(await done).toBe(0);
    expect(out).toBe(`${user}\n`);
    expect(err).toContain("# Lattice SSH requires an additional check.");
    const again = await sshInfo(`${user}@${ipB}`, "id", "-un");
    expect(again).toMatchObject({ code: 0, stdout: `${user}\n` });
    expect(again.stderr).not.toContain("additional check");
    fs.writeFileSync(policyFile, policy(["root", "autogroup:nonroot"]));
    ctl.admin("policy", "set", policyFile);
  }, 90_000);

  it("revocation: removing root from the rule closes a running `sleep` exec and an interactive PTY session about 1 s after B gets the policy; root is then denied with the reason", async () => {
    requireRoot();
    const t0 = Date.now();
    const sleeper = inNs(a.ns, ["ssh", ...SSH_OPTS, `root@${ipB}`, "sleep", "60"], { timeoutMs: 90_000 });
    // An interactive PTY session too (stdin kept open, a login shell waiting on B).
    const tty = spawn("ip", ["netns", "exec", a.ns, "ssh", "-tt", ...SSH_OPTS, `root@${ipB}`], { stdio: ["pipe", "pipe", "pipe"] });
    w.procs.push(tty);
    let ttyOut = "";
    tty.stdout.on("data", (d) => (ttyOut += d));
    const ttyDone = new Promise<number | null>((r) => tty.on("close", (c) => r(c)));
    tty.stdin.write("echo tty-$((6*7))\n");
    await waitFor("interactive shell answers", 20_000, () => ttyOut.includes("tty-42"));
    await waitFor("sleep running on B", 20_000, async () => (await inNs(b.ns, ["pgrep", "-x", "sleep"])).code === 0);
    const before = fs.statSync(w.logs.get("b")!).size;
    fs.writeFileSync(policyFile, policy(["autogroup:nonroot"]));
    const tSet = Date.now();
    ctl.admin("policy", "set", policyFile);
    const r = await sleeper;
    const tEnd = Date.now();
    expect(await ttyDone).not.toBe(0);
    expect(ttyOut).toContain("Access revoked.");
    const tail = fs.readFileSync(w.logs.get("b")!, "utf8").slice(before);
    expect(tail).toContain("ssh connection revoked");
    expect(r.code).not.toBe(0);
    expect(tEnd - t0).toBeLessThan(60_000);
    console.log(`revocation: ssh ended ${tEnd - tSet} ms after "policy set" (policy distribution + revocation)`);
    expect(tEnd - tSet).toBeLessThan(5_000);
    const denied = await sshInfo(`root@${ipB}`, "true");
    expect(denied.code).toBe(255);
    expect(denied.stderr).toMatch(/policy does not permit alice@\S* to SSH as root on server/);
  }, 90_000);
});
