/**
 * lattice-wg as a program (root only): daemonization, the UAPI socket with the real `wg`
 * tool, signals, interface deletion, and interoperation with Debian's wireguard-go over
 * a veth pair between two private network namespaces.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "daemon/bin/lattice-wg.js");
const has = (cmd: string): boolean => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const canRun = process.getuid?.() === 0 && has("wg") && has("ip");
const pid = process.pid;
const nsA = `lwgA${pid}`;
const nsB = `lwgB${pid}`;
const sh = (cmd: string, args: string[], input?: string): string => execFileSync(cmd, args, { encoding: "utf8", input });
const inNs = (ns: string, cmd: string, ...args: string[]): string => sh("ip", ["netns", "exec", ns, cmd, ...args]);
const sockOf = (ifname: string): string => `/var/run/wireguard/${ifname}.sock`;

function startDaemon(ns: string, ifname: string, env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } {
  const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, bin, ifname], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: r.status, stderr: r.stderr };
}

function daemonPid(ifname: string): number | null {
  const r = spawnSync("pgrep", ["-f", `lattice-wg.js( -f| --foreground)? ${ifname}$`], { encoding: "utf8" });
  const first = r.stdout.trim().split("\n")[0];
  return first ? Number(first) : null;
}

async function waitFor(cond: () => boolean, ms = 5_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

function genKey(): { priv: string; pub: string } {
  const priv = sh("wg", ["genkey"]).trim();
  return { priv, pub: sh("wg", ["pubkey"], `${priv}\n`).trim() };
}

function wgSet(ns: string, ifname: string, priv: string, args: string[]): void {
  const keyFile = path.join(fs.mkdtempSync("/tmp/lwg-key-"), "k");
  fs.writeFileSync(keyFile, `${priv}\n`, { mode: 0o600 });
  try {
    inNs(ns, "wg", "set", ifname, "private-key", keyFile, ...args);
  } finally {
    fs.rmSync(path.dirname(keyFile), { recursive: true });
  }
}

describe.runIf(canRun)("lattice-wg program (root, private netns)", () => {
  beforeAll(() => {
    execFileSync("npx", ["tsc", "-b", "daemon"], { cwd: root, stdio: "ignore" });
    sh("ip", ["netns", "add", nsA]);
    sh("ip", ["netns", "add", nsB]);
    sh("ip", ["link", "add", `lva${pid}`, "netns", nsA, "type", "veth", "peer", "name", `lvb${pid}`, "netns", nsB]);
    sh("ip", ["-n", nsA, "addr", "add", "10.211.0.1/24", "dev", `lva${pid}`]);
    sh("ip", ["-n", nsB, "addr", "add", "10.211.0.2/24", "dev", `lvb${pid}`]);
    for (const [ns, dev] of [[nsA, `lva${pid}`], [nsB, `lvb${pid}`]] as const) {
      sh("ip", ["-n", ns, "link", "set", dev, "up"]);
      sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
  }, 120_000);

  afterAll(() => {
    for (const ns of [nsA, nsB]) {
      const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean);
      for (const p of pids) spawnSync("kill", [p]);
    }
    spawnSync("sleep", ["0.3"]);
    spawnSync("ip", ["netns", "del", nsA]);
    spawnSync("ip", ["netns", "del", nsB]);
  });

  it("daemonizes once the interface and the 0700 UAPI socket exist, and stops on SIGTERM", async () => {
    const ifname = `lwt${pid}`.slice(0, 15);
    const r = startDaemon(nsA, ifname);
    expect(r.status).toBe(0);
    // Ready before the parent exits: no waiting needed.
    const link = JSON.parse(sh("ip", ["-n", nsA, "-j", "link", "show", "dev", ifname])) as Array<{ mtu: number; flags: string[] }>;
    expect(link[0]!.mtu).toBe(1420);
    expect(link[0]!.flags).toContain("POINTOPOINT");
    const st = fs.statSync(sockOf(ifname));
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
    const { priv, pub } = genKey();
    const peer = genKey();
    wgSet(nsA, ifname, priv, ["listen-port", "0", "fwmark", "0x42", "peer", peer.pub, "allowed-ips", "10.5.0.0/16,fd00::/64", "endpoint", "[fd00::9]:1234", "persistent-keepalive", "25"]);
    expect(inNs(nsA, "wg", "show", ifname, "public-key").trim()).toBe(pub);
    const port = Number(inNs(nsA, "wg", "show", ifname, "listen-port").trim());
    expect(port).toBeGreaterThan(0); // 0 = random, reported as the bound port
    expect(inNs(nsA, "wg", "show", ifname, "fwmark").trim()).toBe("0x42");
    const dump = inNs(nsA, "wg", "show", ifname, "dump").trim().split("\n")[1]!.split("\t");
    expect(dump[0]).toBe(peer.pub);
    expect(dump[2]).toBe("[fd00::9]:1234");
    expect(dump[3]).toBe("10.5.0.0/16,fd00::/64");
    expect(dump[7]).toBe("25");
    // The UDP port is really bound in the namespace.
    expect(inNs(nsA, "ss", "-Hunl", `sport = :${port}`)).toContain(`:${port}`);
    const p = daemonPid(ifname);
    expect(p).not.toBeNull();
    process.kill(p!, "SIGTERM");
    expect(await waitFor(() => !fs.existsSync(sockOf(ifname)))).toBe(true);
    expect(await waitFor(() => spawnSync("ip", ["-n", nsA, "link", "show", "dev", ifname]).status !== 0)).toBe(true);
    expect(await waitFor(() => daemonPid(ifname) === null)).toBe(true);
  });

  it("runs in the foreground with -f, logging to stderr, and exits 0 on SIGINT", async () => {
    const ifname = `lwf${pid}`.slice(0, 15);
    const child = spawn("ip", ["netns", "exec", nsA, process.execPath, bin, "-f", ifname], { env: { ...process.env, LOG_LEVEL: "info" } });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    expect(await waitFor(() => err.includes("UAPI listener started"))).toBe(true);
    expect(fs.statSync(sockOf(ifname)).isSocket()).toBe(true);
    const p = daemonPid(ifname);
    expect(p).not.toBeNull();
    process.kill(p!, "SIGINT");
    expect(await exited).toBe(0);
    expect(err).toContain("Shutting down (SIGINT)");
    expect(fs.existsSync(sockOf(ifname))).toBe(false);
  });

  it("exits when the interface is deleted, removing its socket", async () => {
    const ifname = `lwd${pid}`.slice(0, 15);
    expect(startDaemon(nsA, ifname).status).toBe(0);
    sh("ip", ["-n", nsA, "link", "del", ifname]);
    expect(await waitFor(() => daemonPid(ifname) === null)).toBe(true);
    expect(fs.existsSync(sockOf(ifname))).toBe(false);
  });

  it("fails with the child's error when the UAPI socket is in use", async () => {
    const ifname = `lwu${pid}`.slice(0, 15);
    expect(startDaemon(nsA, ifname).status).toBe(0);
    try {
      const r = startDaemon(nsB, ifname); // same name in another netns: TUN is fine, socket is taken
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("in use");
    } finally {
      sh("ip", ["-n", nsA, "link", "del", ifname]);
      await waitFor(() => daemonPid(ifname) === null);
    }
  });

  it("answers EADDRINUSE when listen-port is taken, keeping the old port", async () => {
    const l1 = `lwp${pid}`.slice(0, 15);
    const l2 = `lwq${pid}`.slice(0, 15);
    expect(startDaemon(nsA, l1).status).toBe(0);
    expect(startDaemon(nsA, l2).status).toBe(0);
    try {
      inNs(nsA, "wg", "set", l1, "listen-port", "43100");
      const before = inNs(nsA, "wg", "show", l2, "listen-port").trim();
      const r = spawnSync("ip", ["netns", "exec", nsA, "wg", "set", l2, "listen-port", "43100"], { encoding: "utf8" });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain("Address already in use");
      expect(inNs(nsA, "wg", "show", l2, "listen-port").trim()).toBe(before);
      expect(inNs(nsA, "wg", "show", l1, "listen-port").trim()).toBe("43100");
    } finally {
      spawnSync("ip", ["-n", nsA, "link", "del", l1]);
      spawnSync("ip", ["-n", nsA, "link", "del", l2]);
      await waitFor(() => daemonPid(l1) === null && daemonPid(l2) === null);
    }
  });

  it("fails with exit 1 and a message when the TUN cannot be created", () => {
    const r = startDaemon(nsA, "lo");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Failed to create TUN device/);
  });

  it.runIf(has("wireguard-go") && has("ping"))("interoperates with wireguard-go: handshake, pings, bulk TCP both ways, UDP", async () => {
    const la = `lwi${pid}`.slice(0, 15);
    const gb = `gwi${pid}`.slice(0, 15);
    expect(startDaemon(nsA, la).status).toBe(0);
    const wgo = spawnSync("ip", ["netns", "exec", nsB, "wireguard-go", gb], { encoding: "utf8", env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" } });
    expect(wgo.status).toBe(0);
    try {
      const a = genKey();
      const b = genKey();
      wgSet(nsA, la, a.priv, ["listen-port", "41000", "peer", b.pub, "allowed-ips", "10.212.0.2/32", "endpoint", "10.211.0.2:41001"]);
      wgSet(nsB, gb, b.priv, ["listen-port", "41001", "peer", a.pub, "allowed-ips", "10.212.0.1/32", "endpoint", "10.211.0.1:41000"]);
      sh("ip", ["-n", nsA, "addr", "add", "10.212.0.1/24", "dev", la]);
      sh("ip", ["-n", nsA, "link", "set", la, "up"]);
      sh("ip", ["-n", nsB, "addr", "add", "10.212.0.2/24", "dev", gb]);
      sh("ip", ["-n", nsB, "link", "set", gb, "up"]);
      const rxBefore = (JSON.parse(sh("ip", ["-n", nsA, "-s", "-j", "link", "show", "dev", la])) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets;
      const ab = spawnSync("ip", ["netns", "exec", nsA, "ping", "-c", "3", "-i", "0.2", "-W", "3", "10.212.0.2"]);
      expect(ab.status).toBe(0);
      const ba = spawnSync("ip", ["netns", "exec", nsB, "ping", "-c", "3", "-i", "0.2", "-W", "3", "-s", "1300", "10.212.0.1"]);
      expect(ba.status).toBe(0);
      const dump = inNs(nsA, "wg", "show", la, "dump").trim().split("\n")[1]!.split("\t");
      expect(Number(dump[4])).toBeGreaterThan(0); // latest handshake
      expect(Number(dump[5])).toBeGreaterThan(0); // rx bytes
      expect(Number(dump[6])).toBeGreaterThan(0); // tx bytes
      const gdump = inNs(nsB, "wg", "show", gb, "dump").trim().split("\n")[1]!.split("\t");
      expect(gdump[2]).toBe("10.211.0.1:41000");
      // The kernel counted the decrypted packets we wrote to the TUN (3 replies + 3 requests).
      const rxAfter = (JSON.parse(sh("ip", ["-n", nsA, "-s", "-j", "link", "show", "dev", la])) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets;
      expect(rxAfter - rxBefore).toBeGreaterThanOrEqual(6);
      // Bulk TCP both ways: wireguard-go writes plain packets, so B's kernel verifies every
      // checksum we produced when splitting TSO packets; A coalesces what B sends.
      const data = randomBytes(8 * 1024 * 1024);
      const want = `${data.length} ${createHash("sha256").update(data).digest("hex")}`;
      const file = path.join(fs.mkdtempSync("/tmp/lwg-x-"), "data");
      fs.writeFileSync(file, data);
      try {
        expect(await transfer(nsA, nsB, "10.212.0.2", file)).toBe(want);
        expect(await transfer(nsB, nsA, "10.212.0.1", file)).toBe(want);
      } finally {
        fs.rmSync(path.dirname(file), { recursive: true });
      }
      // UDP with partial checksums completed by our reader, verified by B's kernel.
      const udp = spawnSync("ip", ["netns", "exec", nsB, process.execPath, "-e",
        `const s=require("dgram").createSocket("udp4");let n=0;s.on("message",()=>{if(++n===50){console.log("got 50");process.exit(0)}});s.bind(6000,"10.212.0.2",()=>{require("child_process").spawn("ip",["netns","exec",process.argv[1],process.execPath,"-e","const c=require('dgram').createSocket('udp4');let i=0;const f=()=>{if(i++<50)c.send(Buffer.alloc(100+i*20,i),6000,'10.212.0.2',f);else c.close()};f()"],{stdio:"ignore"})});setTimeout(()=>{console.log("got "+n);process.exit(1)},5000)`, nsA], { encoding: "utf8" });
      expect(udp.stdout.trim()).toBe("got 50");
    } finally {
      spawnSync("ip", ["-n", nsA, "link", "del", la]);
      spawnSync("ip", ["-n", nsB, "link", "del", gb]);
      await waitFor(() => daemonPid(la) === null);
    }
  });

  it("moves 20 MB each way intact between two lattice-wg over IPv4 and IPv6 inner addresses", async () => {
    const la = `lwx${pid}`.slice(0, 15);
    const lb = `lwy${pid}`.slice(0, 15);
    expect(startDaemon(nsA, la).status).toBe(0);
    expect(startDaemon(nsB, lb).status).toBe(0);
    try {
      const a = genKey();
      const b = genKey();
      wgSet(nsA, la, a.priv, ["listen-port", "42000", "peer", b.pub, "allowed-ips", "10.213.0.2/32,fd13::2/128", "endpoint", "10.211.0.2:42001"]);
      wgSet(nsB, lb, b.priv, ["listen-port", "42001", "peer", a.pub, "allowed-ips", "10.213.0.1/32,fd13::1/128", "endpoint", "10.211.0.1:42000"]);
      for (const [ns, dev, n] of [[nsA, la, 1], [nsB, lb, 2]] as const) {
        sh("ip", ["-n", ns, "addr", "add", `10.213.0.${n}/24`, "dev", dev]);
        sh("ip", ["-n", ns, "addr", "add", `fd13::${n}/64`, "dev", dev, "nodad"]);
        sh("ip", ["-n", ns, "link", "set", dev, "up"]);
      }
      const data = randomBytes(20 * 1024 * 1024);
      const want = `${data.length} ${createHash("sha256").update(data).digest("hex")}`;
      const file = path.join(fs.mkdtempSync("/tmp/lwg-x-"), "data");
      fs.writeFileSync(file, data);
      try {
        for (const [src, dst, addr] of [[nsA, nsB, "10.213.0.2"], [nsB, nsA, "10.213.0.1"], [nsA, nsB, "fd13::2"], [nsB, nsA, "fd13::1"]] as const) {
          expect(await transfer(src, dst, addr, file)).toBe(want);
        }
      } finally {
        fs.rmSync(path.dirname(file), { recursive: true });
      }
    } finally {
      spawnSync("ip", ["-n", nsA, "link", "del", la]);
      spawnSync("ip", ["-n", nsB, "link", "del", lb]);
      await waitFor(() => daemonPid(la) === null && daemonPid(lb) === null);
    }
  });
});

/** Sends `file` over TCP from netns `src` to `addr`:5001 in netns `dst`; resolves "<bytes> <sha256>" as received. */
function transfer(src: string, dst: string, addr: string, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const server = spawn("ip", ["netns", "exec", dst, process.execPath, "-e",
      `const h=require("crypto").createHash("sha256");let n=0;const srv=require("net").createServer(s=>{s.on("data",d=>{h.update(d);n+=d.length});s.on("end",()=>{process.stdout.write(n+" "+h.digest("hex")+"\\n");process.exit(0)})}).listen(5001,process.argv[1],()=>process.stdout.write("ready\\n"))`, addr]);
    let out = "";
    const timer = setTimeout(() => { server.kill(); reject(new Error(`transfer to ${addr} timed out: ${out}`)); }, 60_000);
    server.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out === "ready\n") {
        spawn("ip", ["netns", "exec", src, process.execPath, "-e",
          `const s=require("net").connect(5001,process.argv[1],()=>require("fs").createReadStream(process.argv[2]).pipe(s))`, addr, file], { stdio: "ignore" });
      }
    });
    server.on("exit", () => {
      clearTimeout(timer);
      resolve(out.replace(/^ready\n/, "").trim());
    });
  });
}

