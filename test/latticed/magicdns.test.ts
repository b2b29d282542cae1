// MagicDNS end to end: two real latticed nodes (alpha, beta) and lattice-control in network
// namespaces; `dig` in alpha's namespace asks 100.100.100.100 (through lattice0, answered
// by alpha's latticed) for beta by short name, FQDN, PTR, an unknown name, a name only the
// upstream knows (a tiny UDP DNS server in the control namespace, the only nameserver in
// alpha's --resolv-conf file), and again after beta is renamed on the server. A flood of
// garbage to quad-100 is dropped and counted while answers keep coming. --accept-dns: the
// file is rewritten to 100.100.100.100 + search domain while running (glibc resolves the
// short name through it in a mount namespace where it is /etc/resolv.conf), and restored
// byte for byte on down, --accept-dns=false and shutdown. Also: DNS over TCP (dig +tcp) at
// both addresses; `ssh root@bravo` by short name through that resolv.conf; split DNS to a
// dnsmasq bound only to beta's tailnet address (configured with `lattice-control dns set`),
// so only the tunnel reaches it; dns-status / `lattice dns status` / status DNSMode; and
// systemd-resolved mode on a third node with a fake `resolvectl` on PATH recording its
// argv (no systemd runs here), and resolvconf mode with a fake `resolvconf`. The steps share one world and run in order. The split-DNS
// step needs `lattice-control dns set` (issue 10's control side). Needs root, iproute2,
// unshare, dig (bind9-dnsutils), dnsmasq (dnsmasq-base), ssh.
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO, World, localApi, requireRoot, run, waitFor } from "./harness.js";

/** A UDP DNS server answering every A question with 192.0.2.53 (TTL 5); Node, no deps. */
const UPSTREAM_JS = `
const dgram = require("node:dgram");
const s = dgram.createSocket("udp4");
s.on("message", (m, r) => {
  if (m.length < 12) return;
  let o = 12;
  while (o < m.length && m[o] !== 0) o += m[o] + 1;
  o += 5;
  if (o > m.length) return;
  const head = Buffer.from(m.subarray(0, o));
  head[2] |= 0x80; head[3] = 0x80;
  head.writeUInt16BE(1, 6); head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10);
  const ans = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 192, 0, 2, 53]);
  s.send(Buffer.concat([head, ans]), r.port, r.address);
});
s.bind(53, "10.77.0.1", () => console.log("upstream ready"));
`;

describe("MagicDNS (100.100.100.100) in network namespaces", () => {
  const w = new World();
  let ctl: Awaited<ReturnType<World["control"]>>;
  let key = "";
  let a: { ns: string; lanIp: string };
  let b: { ns: string; lanIp: string };
  let da: ReturnType<World["latticed"]>;
  let db: ReturnType<World["latticed"]>;
  let sa: any;
  let ipB = "";
  let ip6B = "";
  let domain = "";
  let original = "";
  let resolvA = "";
  let ours = "";
  let sockC = "";
  let calls = "";
  let resolvC = "";
  let stub = "";
  const dig = (...args: string[]) => run("ip", ["netns", "exec", a.ns, "dig", "+time=3", "+tries=1", ...args]);
  const short = (...args: string[]) => dig("+short", ...args).trim();
  const metric = async (ev: string) => Number(new RegExp(`latticed_magicdns_events_total\\{event="${ev}"\\} (\\d+)`).exec((await localApi(da.socket, "GET", "/localapi/v0/metrics")).body as string)?.[1] ?? 0);
  afterAll(async () => {
    await w.cleanup();
  });

  it("setup: control with a policy, alpha and beta (tagged, --ssh) Running; an upstream DNS server on the LAN", async () => {
    requireRoot();
    w.lan();
    ctl = await w.control();
    ctl.admin("users", "create", "alice", "--password", "correct-horse-battery");
    // beta is a tagged SSH server (as in ssh.test.ts); every node may reach every port (DNS to beta's dnsmasq).
    const policyFile = path.join(w.dir, "policy.hujson");
    fs.writeFileSync(policyFile, JSON.stringify({
      tagOwners: { "tag:server": ["alice@"] },
      acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
      ssh: [{ action: "accept", src: ["alice@"], dst: ["tag:server"], users: ["root"] }],
    }));
    ctl.admin("policy", "set", policyFile);
    key = ctl.admin("keys", "create", "--user", "alice", "--reusable", "--preapproved");
    const serverKey = ctl.admin("keys", "create", "--user", "alice", "--reusable", "--preapproved", "--tags", "tag:server");
    a = w.nodeNs("a");
    b = w.nodeNs("b");
    // alpha's upstream resolver: the control namespace's 10.77.0.1:53 (100.100.100.100 itself is skipped).
    original = "# the host's own\nnameserver 100.100.100.100\nnameserver   10.77.0.1\noptions edns0\n";
    resolvA = path.join(w.dir, "a-resolv.conf");
    fs.writeFileSync(resolvA, original, { mode: 0o644 });
    const upJs = path.join(w.dir, "upstream.cjs");
    fs.writeFileSync(upJs, UPSTREAM_JS);
    w.spawn("upstream", w.ns("ctl"), [process.execPath, upJs]);
    await waitFor("upstream DNS", 10_000, () => w.log("upstream").includes("upstream ready"));
    da = w.latticed("a", a.ns);
    db = w.latticed("b", b.ns);
    for (const d of [da, db]) await waitFor("LocalAPI up", 20_000, () => localApi(d.socket, "GET", "/localapi/v0/status").catch(() => null));
    for (const [d, host, k, ssh] of [[da, "alpha", key, false], [db, "beta", serverKey, true]] as const) {
      const up = await localApi(d.socket, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: k, Hostname: host, RunSSH: ssh });
      expect(up.status, JSON.stringify(up.body)).toBe(200);
    }
    const running = (sock: string) =>
      waitFor("Running with one peer", 30_000, async () => {
        const s = (await localApi(sock, "GET", "/localapi/v0/status")).body;
        return s.BackendState === "Running" && Object.keys(s.Peer ?? {}).length === 1 ? s : null;
      });
    sa = await running(da.socket);
    const sb = await running(db.socket);
    ipB = sb.TailscaleIPs.find((x: string) => x.includes(".")) as string;
    ip6B = sb.TailscaleIPs.find((x: string) => x.includes(":")) as string;
    domain = sa.MagicDNSSuffix as string;
    expect(domain).toMatch(/\w/);
    expect(sb.Self.DNSName).toBe(`beta.${domain}.`);

  }, 120_000);

  it("names over UDP and TCP at both addresses: short name, FQDN, AAAA, PTR, NXDOMAIN + SOA, EDNS0, several queries per TCP connection; other names via the upstream", async () => {
    expect(short("@100.100.100.100", "beta")).toBe(ipB);
    expect(short("@100.100.100.100", `beta.${domain}`)).toBe(ipB);
    expect(short("@100.100.100.100", "BETA." + domain.toUpperCase() + ".")).toBe(ipB);
    expect(short("@fd7a:115c:a1e0::53", `beta.${domain}`, "AAAA")).toBe(ip6B);
    expect(short("@100.100.100.100", "-x", ipB)).toBe(`beta.${domain}.`);
    // DNS over TCP at both addresses (the kernel listener behind the hairpin).
    expect(short("+tcp", "@100.100.100.100", "beta")).toBe(ipB);
    expect(short("+tcp", "@100.100.100.100", `beta.${domain}`)).toBe(ipB);
    expect(short("+tcp", "@fd7a:115c:a1e0::53", `beta.${domain}`, "AAAA")).toBe(ip6B);
    // Several queries on one TCP connection (dig +keepopen reuses it).
    expect(dig("+tcp", "+keepopen", "+short", "@100.100.100.100", "beta", "A", "beta", "AAAA").trim().split("\n")).toEqual([ipB, ip6B]);
    const nx = dig("@100.100.100.100", `nosuch.${domain}`);
    expect(nx).toMatch(/status: NXDOMAIN/);
    expect(nx).toMatch(/flags: qr aa rd ra/);
    expect(nx).toMatch(new RegExp(`AUTHORITY SECTION:\\n${domain.replace(/\./g, "\\.")}\\.\\s+10\\s+IN\\s+SOA`));
    // EDNS0 kept (dig sends an OPT record by default).
    expect(dig("@100.100.100.100", "beta")).toMatch(/OPT PSEUDOSECTION:\n; EDNS: version: 0/);
    // Not a tailnet name: forwarded to the upstream in resolv.conf (100.100.100.100 skipped).
    expect(short("@100.100.100.100", "www.example.com")).toBe("192.0.2.53");

  }, 60_000);

  it("floods and hostile clients: UDP garbage, 100 held TCP connections (64 served, the rest refused and counted), a peer dialling the internal port", async () => {
    // A flood of garbage to quad-100 from A: dropped or FORMERR'd, and the resolver still answers.
    const flood = `const s=require("node:dgram").createSocket("udp4");let n=0;const go=()=>{for(let i=0;i<50;i++){const b=require("node:crypto").randomBytes(1+Math.floor(Math.random()*400));s.send(b,53,"100.100.100.100");}if(++n<40)setImmediate(go);else setTimeout(()=>s.close(),200)};go();`;
    run("ip", ["netns", "exec", a.ns, process.execPath, "-e", flood]);
    expect(short("@100.100.100.100", "beta")).toBe(ipB);
    const metrics = (await localApi(da.socket, "GET", "/localapi/v0/metrics")).body as string;
    const queries = Number(/latticed_magicdns_events_total\{event="queries"\} (\d+)/.exec(metrics)?.[1]);
    // 2000 sent; the kernel may drop some on the TUN queue before latticed reads them.
    expect(queries).toBeGreaterThanOrEqual(200);
    const malformed = Number(/latticed_magicdns_events_total\{event="dropped_malformed"\} (\d+)/.exec(metrics)?.[1]);
    expect(malformed).toBeGreaterThan(0);
    const alive = await localApi(da.socket, "GET", "/localapi/v0/status");
    expect(alive.body.BackendState).toBe("Running");

    // A TCP flood: 100 connections held open at once (over the limit of 64), then 50
    // pipelined queries on each; every accepted connection gets all its answers, the rest
    // are closed at accept and counted.
    const acc0 = await metric("tcp_accepted");
    const ref0 = await metric("tcp_refused_full");
    const tcpFlood = `const net=require("node:net");let replies=0,closed=0;const N=100;const socks=[];
const q=(id)=>{const h=Buffer.alloc(12);h.writeUInt16BE(id,0);h[2]=1;h.writeUInt16BE(1,4);const m=Buffer.concat([h,Buffer.from([4,98,101,116,97,0,0,1,0,1])]);const l=Buffer.alloc(2);l.writeUInt16BE(m.length);return Buffer.concat([l,m]);};
let connected=0;const go=()=>setTimeout(()=>{for(const s of socks){if(s.destroyed)continue;for(let j=0;j<50;j++)s.write(q(j));s.end();}},300);
for(let i=0;i<N;i++){const s=net.connect(53,"100.100.100.100");socks.push(s);let buf=Buffer.alloc(0);
s.on("connect",()=>{if(++connected===N)go();});
s.on("data",(d)=>{buf=Buffer.concat([buf,d]);while(buf.length>=2&&buf.length>=2+buf.readUInt16BE(0)){replies++;buf=buf.subarray(2+buf.readUInt16BE(0));}});
s.on("error",()=>{});s.on("close",()=>{if(++closed===N)console.log(JSON.stringify({replies}));});}`;
    const floodOut = run("ip", ["netns", "exec", a.ns, process.execPath, "-e", tcpFlood]);
    const floodReplies = JSON.parse(floodOut).replies as number;
    const accepted = (await metric("tcp_accepted")) - acc0;
    const refused = (await metric("tcp_refused_full")) - ref0;
    console.log(`MagicDNS TCP flood: ${accepted} connections accepted, ${refused} refused (limit), ${floodReplies} answers`);
    expect(accepted + refused).toBe(100);
    expect(refused).toBeGreaterThan(0);
    expect(floodReplies).toBe(accepted * 50);
    expect(short("+tcp", "@100.100.100.100", "beta")).toBe(ipB);
    expect(short("@100.100.100.100", "beta")).toBe(ipB);

    // Hostile peer: beta connects straight to alpha's internal TCP DNS port over the tunnel
    // (its source is beta's address, not quad-100): closed without an answer, counted.
    const listeners = run("ip", ["netns", "exec", a.ns, "ss", "-Hltn"]).trim().split("\n").filter((l) => l.trim() !== "");
    expect(listeners).toHaveLength(1); // the hairpin's listener is alpha's only TCP socket
    const portQ = Number(/:(\d+)\s/.exec(listeners[0]!.split(/\s+/)[3] + " ")?.[1]);
    expect(portQ).toBeGreaterThan(0);
    const refusedBefore = await metric("tcp_refused_source");
    const direct = `const s=require("node:net").connect(${portQ},process.argv[1]);let got=0;s.on("connect",()=>s.write(Buffer.from([0,22,0,1,1,0,0,1,0,0,0,0,0,0,4,98,101,116,97,0,0,1,0,1])));s.on("data",d=>got+=d.length);s.on("error",()=>{});s.on("close",()=>{console.log("closed "+got);process.exit(0)});setTimeout(()=>{console.log("open "+got);process.exit(0)},5000);`;
    expect(run("ip", ["netns", "exec", b.ns, process.execPath, "-e", direct, sa.TailscaleIPs[0]]).trim()).toBe("closed 0");
    expect(await metric("tcp_refused_source")).toBe(refusedBefore + 1);

  }, 120_000);

  it("renaming beta on the server changes the answers within 1 s", async () => {
    // Rename beta on the server: alpha's answers follow within 1 s.
    ctl.admin("nodes", "rename", "beta", "bravo");
    const t0 = Date.now();
    await waitFor("bravo resolves", 1_000, () => short("@100.100.100.100", `bravo.${domain}`) === ipB);
    const ms = Date.now() - t0;
    console.log(`MagicDNS: rename visible after ${ms} ms`);
    expect(dig("@100.100.100.100", `beta.${domain}`)).toMatch(/status: NXDOMAIN/);
    expect(short("@100.100.100.100", "bravo")).toBe(ipB);
    expect(short("@100.100.100.100", "-x", ipB)).toBe(`bravo.${domain}.`);

  }, 30_000);

  it("--accept-dns direct mode: resolv.conf names quad-100, getent and `ssh root@bravo` by short name through it; dns-status, `lattice dns status`, status DNSMode", async () => {
    // --accept-dns (on by default): alpha's resolv.conf names quad-100 and the tailnet domain.
    ours = `# resolv.conf(5) file generated by lattice\n# DO NOT EDIT THIS FILE BY HAND -- CHANGES WILL BE OVERWRITTEN\n\nnameserver 100.100.100.100\nnameserver fd7a:115c:a1e0::53\nsearch ${domain}\n`;
    expect(fs.readFileSync(resolvA, "utf8")).toBe(ours);
    // glibc through that file as /etc/resolv.conf (a mount namespace): the short name resolves via the search domain.
    const getent = run("ip", ["netns", "exec", a.ns, "unshare", "-m", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && getent ahostsv4 bravo`, resolvA]);
    expect(getent).toMatch(new RegExp(`^${ipB.replace(/\./g, "\\.")}\\s+STREAM bravo\\.${domain.replace(/\./g, "\\.")}`, "m"));
    // `ssh root@bravo` by short name: OpenSSH resolves it through that resolv.conf (Lattice SSH on beta).
    await waitFor("Lattice SSH on beta", 30_000, () => run("ip", ["netns", "exec", a.ns, "ssh-keyscan", "-T", "3", "-t", "ed25519", ipB]).includes("ssh-ed25519"));
    const sshOpts = ["-F", "/dev/null", "-o", "LogLevel=ERROR", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"];
    const viaSsh = run("ip", ["netns", "exec", a.ns, "unshare", "-m", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec ssh "$@"`, resolvA, ...sshOpts, "root@bravo", "echo", "$SSH_CONNECTION"]);
    // SSH_CONNECTION's server address: beta's IPv4 or IPv6 tailnet address (getaddrinfo's choice).
    expect([ipB, ip6B]).toContain(viaSsh.trim().split(" ")[2]);
    expect(viaSsh.trim().split(" ")[3]).toBe("22");

    // dns-status, `lattice dns status`, status DNSMode.
    const ds = (await localApi(da.socket, "GET", "/localapi/v0/dns-status")).body;
    expect(ds).toEqual({
      MagicDNS: true, Domain: domain, Mode: "direct", ResolvConf: resolvA, Resolvers: ["10.77.0.1"],
      Routes: {}, SearchDomains: [domain], Nameservers: ["100.100.100.100", "fd7a:115c:a1e0::53"],
    });
    expect((await localApi(da.socket, "GET", "/localapi/v0/status")).body.DNSMode).toBe("direct");
    const cli = (...args: string[]) => run(process.execPath, [path.join(REPO, "cli/bin/lattice.js"), "--socket", da.socket, ...args]);
    expect(cli("dns", "status")).toBe(
      `MagicDNS: enabled\nTailnet domain: ${domain}\nMode: direct (${resolvA})\nNameservers given to the host: 100.100.100.100 fd7a:115c:a1e0::53\n` +
        `Search domains: ${domain}\nResolvers: 10.77.0.1\nSplit DNS routes: (none)\n`,
    );
    expect(JSON.parse(cli("dns", "status", "--json"))).toEqual(ds);
  }, 60_000);

  it("systemd-resolved mode with a fake resolvectl on PATH: exact per-link calls, resolv.conf untouched", async () => {
    // systemd-resolved mode: a resolv.conf with resolved's header and a fake resolvectl on
    // PATH (logs its argv); latticed configures the TUN link (reverted on down, below).
    const c = w.nodeNs("c");
    const fakeBin = path.join(w.dir, "fakebin");
    fs.mkdirSync(fakeBin);
    calls = path.join(w.dir, "resolvectl.calls");
    fs.writeFileSync(path.join(fakeBin, "resolvectl"), `#!/bin/sh\necho "$*" >> ${calls}\n`, { mode: 0o755 });
    resolvC = path.join(w.dir, "c-resolv.conf");
    stub = "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n# Do not edit.\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n";
    fs.writeFileSync(resolvC, stub);
    sockC = path.join(w.dir, "c.sock");
    w.spawn("c", c.ns, ["env", `PATH=${fakeBin}:${process.env["PATH"]}`, process.execPath, path.join(REPO, "daemon/bin/latticed.js"), "--state", path.join(w.dir, "c-state"), "--socket", sockC, "--verbose", "1", "--resolv-conf", resolvC]);
    await waitFor("LocalAPI c", 20_000, () => localApi(sockC, "GET", "/localapi/v0/status").catch(() => null));
    expect((await localApi(sockC, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: key, Hostname: "charlie" })).status).toBe(200);
    await waitFor("resolvectl configured", 30_000, () => fs.existsSync(calls) && fs.readFileSync(calls, "utf8").includes("default-route"));
    expect(fs.readFileSync(calls, "utf8")).toBe(
      `status\ndns lattice0 100.100.100.100 fd7a:115c:a1e0::53\ndomain lattice0 ${domain}\ndefault-route lattice0 false\n`,
    );
    expect((await localApi(sockC, "GET", "/localapi/v0/dns-status")).body).toMatchObject({ Mode: "resolved", ResolvConf: resolvC, Resolvers: ["127.0.0.53"] });
  }, 60_000);

  it("resolvconf mode with a fake resolvconf on PATH: stale record dropped at start, our file on stdin of -a, -d on down", async () => {
    const d = w.nodeNs("d");
    const fakeBin = path.join(w.dir, "fakebin-rc");
    fs.mkdirSync(fakeBin);
    const rcCalls = path.join(w.dir, "resolvconf.calls");
    fs.writeFileSync(path.join(fakeBin, "resolvconf"), `#!/bin/sh\necho "ARGS $*" >> ${rcCalls}\n[ "$1" = "-a" ] && cat >> ${rcCalls}\nexit 0\n`, { mode: 0o755 });
    const resolvD = path.join(w.dir, "d-resolv.conf");
    const rcFile = "# Dynamic resolv.conf(5) file for glibc resolver(3) generated by resolvconf(8)\n#     DO NOT EDIT THIS FILE BY HAND -- YOUR CHANGES WILL BE OVERWRITTEN\nnameserver 10.77.0.1\n";
    fs.writeFileSync(resolvD, rcFile);
    const sockD = path.join(w.dir, "d.sock");
    const proc = w.spawn("d", d.ns, ["env", `PATH=${fakeBin}:${process.env["PATH"]}`, process.execPath, path.join(REPO, "daemon/bin/latticed.js"), "--state", path.join(w.dir, "d-state"), "--socket", sockD, "--verbose", "1", "--resolv-conf", resolvD]);
    await waitFor("LocalAPI d", 20_000, () => localApi(sockD, "GET", "/localapi/v0/status").catch(() => null));
    expect((await localApi(sockD, "POST", "/localapi/v0/up", { ControlURL: ctl.url, AuthKey: key, Hostname: "delta" })).status).toBe(200);
    await waitFor("resolvconf -a", 30_000, () => fs.existsSync(rcCalls) && fs.readFileSync(rcCalls, "utf8").includes("ARGS -a"));
    await waitFor("record written", 5_000, () => fs.readFileSync(rcCalls, "utf8").endsWith(`search ${domain}\n`));
    expect(fs.readFileSync(rcCalls, "utf8")).toBe(
      "ARGS --version\nARGS -d lattice0.inet\nARGS -a lattice0.inet\n" +
        `# resolv.conf(5) file generated by lattice\n# DO NOT EDIT THIS FILE BY HAND -- CHANGES WILL BE OVERWRITTEN\n\nnameserver 100.100.100.100\nnameserver fd7a:115c:a1e0::53\nsearch ${domain}\n`,
    );
    expect((await localApi(sockD, "GET", "/localapi/v0/dns-status")).body).toMatchObject({ Mode: "resolvconf", ResolvConf: resolvD, Resolvers: ["10.77.0.1"] });
    expect((await localApi(sockD, "POST", "/localapi/v0/down", {})).status).toBeLessThan(300);
    await waitFor("resolvconf -d", 5_000, () => fs.readFileSync(rcCalls, "utf8").endsWith("ARGS -d lattice0.inet\n"));
    expect(fs.readFileSync(resolvD, "utf8")).toBe(rcFile);
    await World.stop(proc);
  }, 60_000);

  it("split DNS: office.example to a dnsmasq bound only to beta's tailnet address, set with `lattice-control dns set`; reached through the tunnel over UDP and TCP", async () => {
    // Split DNS: office.example → a dnsmasq bound only to beta's tailnet address (only the tunnel reaches it).
    const dnsmasqLog = path.join(w.dir, "dnsmasq.log");
    w.spawn("dnsmasq", b.ns, ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--user=root", `--listen-address=${ipB}`, "--bind-interfaces", "--port=53", "--address=/office.example/10.99.0.7", "--log-queries", `--log-facility=${dnsmasqLog}`, `--pid-file=${path.join(w.dir, "dnsmasq.pid")}`]);
    await waitFor("dnsmasq on beta's tailnet address", 10_000, () => run("ip", ["netns", "exec", b.ns, "ss", "-Hlun", `src ${ipB}:53`]).includes(`${ipB}:53`));
    const dnsFile = path.join(w.dir, "dns.json");
    fs.writeFileSync(dnsFile, JSON.stringify({ splitDNS: { "office.example": [{ address: ipB }] } }));
    ctl.admin("dns", "set", dnsFile);
    await waitFor("alpha has the split-DNS route", 10_000, async () => (await localApi(da.socket, "GET", "/localapi/v0/dns-status")).body.Routes?.["office.example"]?.[0] === ipB);
    expect(short("@100.100.100.100", "db.office.example")).toBe("10.99.0.7");
    expect(short("+tcp", "@100.100.100.100", "files.office.example")).toBe("10.99.0.7");
    // dnsmasq saw the queries from alpha's tailnet address (through the tunnel).
    expect(fs.readFileSync(dnsmasqLog, "utf8")).toMatch(new RegExp(`query\\[A\\] db\\.office\\.example from ${sa.TailscaleIPs[0].replace(/\./g, "\\.")}`));
    // Not routed: still the upstream; tailnet names still local.
    expect(short("@100.100.100.100", "www.example.com")).toBe("192.0.2.53");
    expect(short("@100.100.100.100", "bravo")).toBe(ipB);

    // The route reaches the resolved-mode node too: a routing-only domain on its link.
    await waitFor("charlie's link gets ~office.example", 10_000, () => fs.readFileSync(calls, "utf8").includes(`domain lattice0 ${domain} ~office.example\n`));
    expect((await localApi(da.socket, "GET", "/localapi/v0/dns-status")).body.Routes).toEqual({ "office.example": [ipB] });
    expect(run(process.execPath, [path.join(REPO, "cli/bin/lattice.js"), "--socket", da.socket, "dns", "status"])).toContain(`Split DNS routes:\n  office.example -> ${ipB}\n`);
  }, 60_000);

  it("down, --accept-dns=false and shutdown restore the original byte for byte; resolved mode reverts the link", async () => {
    // down → the original, byte for byte; up → ours again.
    expect((await localApi(da.socket, "POST", "/localapi/v0/down", {})).status).toBeLessThan(300);
    await waitFor("restored on down", 5_000, () => fs.readFileSync(resolvA, "utf8") === original);
    expect((await localApi(da.socket, "GET", "/localapi/v0/dns-status")).body).toMatchObject({ Mode: "off", Nameservers: [] });
    expect((await localApi(da.socket, "POST", "/localapi/v0/up", {})).status).toBe(200);
    await waitFor("ours again on up", 10_000, () => fs.readFileSync(resolvA, "utf8") === ours);
    // --accept-dns=false → the original; true → ours.
    expect((await localApi(da.socket, "PATCH", "/localapi/v0/prefs", { CorpDNS: false })).status).toBe(200);
    await waitFor("restored with accept-dns=false", 5_000, () => fs.readFileSync(resolvA, "utf8") === original);
    expect((await localApi(da.socket, "PATCH", "/localapi/v0/prefs", { CorpDNS: true })).status).toBe(200);
    await waitFor("ours with accept-dns=true", 5_000, () => fs.readFileSync(resolvA, "utf8") === ours);
    // Shutdown → the original; no backup left behind.
    await World.stop(da.proc);
    expect(fs.readFileSync(resolvA, "utf8")).toBe(original);
    // beta had no resolv.conf at all: it has ours while running; none after shutdown.
    expect(fs.readFileSync(db.resolvConf, "utf8")).toBe(ours.replace(/bravo/, "bravo"));
    await World.stop(db.proc);
    expect(fs.existsSync(db.resolvConf)).toBe(false);
    expect(fs.existsSync(path.join(w.dir, "a-resolv.pre-lattice-backup.conf"))).toBe(false);

    expect((await localApi(sockC, "POST", "/localapi/v0/down", {})).status).toBeLessThan(300);
    await waitFor("resolvectl revert", 5_000, () => fs.readFileSync(calls, "utf8").endsWith("revert lattice0\n"));
    // resolv.conf itself is resolved's: never touched in this mode.
    expect(fs.readFileSync(resolvC, "utf8")).toBe(stub);
  }, 60_000);
});
