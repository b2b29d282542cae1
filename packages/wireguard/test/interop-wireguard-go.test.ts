// Interop with Debian's real wireguard-go, over loopback inside a private network
// namespace. Needs root, /dev/net/tun, wireguard-go, wg and a built dist/ (`tsc -b`);
// runs whenever root (as in CI); LATTICE_WG_INTEROP=0 opts out. Both roles are
// checked: Lattice as initiator (it pings first) and as responder (wireguard-go pings).
import { describe, expect, test, beforeAll, afterAll } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { x25519PublicKey, clampScalar } from "@lattice/crypto";
import { randomBytes } from "node:crypto";

const enabled = process.env.LATTICE_WG_INTEROP !== "0" && process.getuid?.() === 0;
const ns = `lwgi${process.pid}`;
const ifname = `lwg${process.pid % 100000}`;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const inNs = (cmd: string, args: string[]) => sh("ip", ["netns", "exec", ns, cmd, ...args]);

describe.runIf(enabled)("interop with wireguard-go", () => {
  let wgGo: ChildProcess | undefined;
  let peer: ChildProcess | undefined;
  let out = "";
  const dir = mkdtempSync(join(tmpdir(), "lwgi-"));
  const goPriv = clampScalar(new Uint8Array(randomBytes(32)));
  const ourPriv = clampScalar(new Uint8Array(randomBytes(32)));
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

  const psk = new Uint8Array(randomBytes(32));
  const startPeer = (mode: string, withPsk = false) => {
    out = "";
    peer = spawn("ip", ["netns", "exec", ns, process.execPath, join(__dirname, "interop", "wg-peer.mjs"),
      hex(ourPriv), hex(x25519PublicKey(goPriv)), "51821", "51820", "10.77.0.2", "10.77.0.1", mode, ...(withPsk ? [hex(psk)] : [])]);
    peer.stdout!.on("data", (d) => { out += d.toString(); });
    peer.stderr!.on("data", (d) => { out += d.toString(); });
  };
  const waitFor = async (s: string, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!out.includes(s)) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${s}; output:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stopPeer = async () => {
    if (peer && peer.exitCode === null) {
      peer.kill("SIGTERM");
      await new Promise((r) => peer!.once("exit", r));
    }
  };

  beforeAll(async () => {
    sh("ip", ["netns", "add", ns]);
    sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
    wgGo = spawn("ip", ["netns", "exec", ns, "wireguard-go", "-f", ifname], { stdio: "ignore" });
    for (let i = 0; i < 100; i++) {
      try { inNs("wg", ["show", ifname]); break; } catch { await new Promise((r) => setTimeout(r, 50)); }
    }
    writeFileSync(join(dir, "key"), b64(goPriv) + "\n", { mode: 0o600 });
    inNs("wg", ["set", ifname, "private-key", join(dir, "key"), "listen-port", "51820",
      "peer", b64(x25519PublicKey(ourPriv)), "allowed-ips", "10.77.0.2/32", "endpoint", "127.0.0.1:51821"]);
    sh("ip", ["-n", ns, "addr", "add", "10.77.0.1/24", "dev", ifname]);
    sh("ip", ["-n", ns, "link", "set", ifname, "up"]);
  }, 30_000);

  afterAll(async () => {
    await stopPeer();
    if (wgGo && wgGo.exitCode === null) wgGo.kill("SIGTERM");
    try { sh("ip", ["netns", "del", ns]); } catch { /* already gone */ }
    rmSync(dir, { recursive: true, force: true });
  });

  test("Lattice initiates: handshake, ICMP echo through wireguard-go and back", async () => {
    startPeer("initiate");
    await waitFor("READY");
    await waitFor("ECHO_REPLY");
    const dump = inNs("wg", ["show", ifname, "dump"]).trim().split("\n")[1].split("\t");
    expect(Number(dump[4])).toBeGreaterThan(0); // latest handshake
    // wireguard-go → Lattice over the same session.
    inNs("ping", ["-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"]);
    await stopPeer();
  }, 30_000);

  test("Lattice responds (with a preshared key): wireguard-go initiates, ping succeeds", async () => {
    // Reset wireguard-go's sessions for our key by removing and re-adding the peer, now with a PSK.
    writeFileSync(join(dir, "psk"), b64(psk) + "\n", { mode: 0o600 });
    inNs("wg", ["set", ifname, "peer", b64(x25519PublicKey(ourPriv)), "remove"]);
    inNs("wg", ["set", ifname, "peer", b64(x25519PublicKey(ourPriv)), "preshared-key", join(dir, "psk"), "allowed-ips", "10.77.0.2/32", "endpoint", "127.0.0.1:51821"]);
    startPeer("respond", true);
    await waitFor("READY");
    const res = inNs("ping", ["-c", "3", "-i", "0.2", "-W", "3", "10.77.0.2"]);
    expect(res).toMatch(/3 received/);
    await waitFor("ECHO_REQUEST");
  }, 30_000);
});
