import { execFileSync, spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packetAt, TunDevice, TunError, type PacketBatch } from "../src/index.js";

const isRoot = process.getuid?.() === 0;
const ns = `ltun-${process.pid}`;
const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8" });

function run(cmd: string[]): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { stdio: "ignore" });
    p.on("exit", (code) => resolve(code ?? -1));
  });
}

function checksum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Turns an IPv4 ICMP echo request into the matching echo reply (new buffer), or null. */
function echoReply(p: Uint8Array): Uint8Array | null {
  if (p[0]! >> 4 !== 4 || p[9] !== 1) return null;
  const ihl = (p[0]! & 15) * 4;
  if (p[ihl] !== 8) return null;
  const r = Uint8Array.from(p);
  r.set(p.subarray(16, 20), 12);
  r.set(p.subarray(12, 16), 16);
  r[10] = r[11] = 0;
  const hc = checksum(r, 0, ihl);
  r[10] = hc >> 8;
  r[11] = hc & 0xff;
  r[ihl] = 0;
  r[ihl + 2] = r[ihl + 3] = 0;
  const ic = checksum(r, ihl, r.length);
  r[ihl + 2] = ic >> 8;
  r[ihl + 3] = ic & 0xff;
  return r;
}

function linkStats(name: string): { rx: number; tx: number } {
  const j = JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", name)) as Array<{
    stats64: { rx: { packets: number }; tx: { packets: number } };
  }>;
  return { rx: j[0]!.stats64.rx.packets, tx: j[0]!.stats64.tx.packets };
}

describe.runIf(isRoot)("TunDevice (root, private netns)", () => {
  beforeAll(() => {
    ip("netns", "add", ns);
  });
  afterAll(() => {
    ip("netns", "del", ns);
  });

  /** Creates a TUN here, moves it into the netns, gives it 10.77.0.1/24 and brings it up. */
  function setup(suffix: string): TunDevice {
    const tun = TunDevice.open({ name: `lt${suffix}${process.pid}`.slice(0, 15), mtu: 1420 });
    ip("link", "set", tun.name, "netns", ns);
    ip("-n", ns, "addr", "add", "10.77.0.1/24", "dev", tun.name);
    ip("-n", ns, "link", "set", tun.name, "up");
    return tun;
  }

  it("creates the interface with the requested MTU and an ifindex", () => {
    const tun = TunDevice.open({ name: `lta${process.pid}`.slice(0, 15), mtu: 1380 });
    try {
      expect(tun.ifindex).toBeGreaterThan(0);
      expect(tun.mtu).toBe(1380);
      const j = JSON.parse(ip("-j", "link", "show", "dev", tun.name)) as Array<{ mtu: number; ifindex: number; link_type: string }>;
      expect(j[0]!.mtu).toBe(1380);
      expect(j[0]!.ifindex).toBe(tun.ifindex);
      expect(j[0]!.link_type).toBe("none");
    } finally {
      tun.close();
    }
    expect(() => ip("link", "show", "dev", tun.name)).toThrow();
  });

  it("reads pings in batches and writes replies the kernel accepts", async () => {
    const tun = setup("b");
    const requests: Uint8Array[] = [];
    tun.start({
      onPackets(b: PacketBatch) {
        const replies: Uint8Array[] = [];
        for (let i = 0; i < b.count; i++) {
          const p = packetAt(b, i);
          const r = echoReply(p);
          if (r) {
            requests.push(Uint8Array.from(p));
            replies.push(r);
          }
        }
        tun.write(replies);
      },
      onError(e) {
        throw e;
      },
    });
    try {
      const before = linkStats(tun.name);
      const code = await run(["ip", "netns", "exec", ns, "ping", "-c", "5", "-i", "0.05", "-W", "2", "-s", "1000", "10.77.0.2"]);
      expect(code).toBe(0); // every echo got our reply
      expect(requests.length).toBe(5);
      expect(requests[0]!.length).toBe(1028);
      const after = linkStats(tun.name);
      expect(after.rx - before.rx).toBe(5); // kernel counts what we wrote as rx
      expect(after.tx - before.tx).toBeGreaterThanOrEqual(5);
      expect(tun.stats.txPackets).toBe(5);
    } finally {
      tun.close();
    }
  });

  it("batches a flood into fewer callbacks than packets", async () => {
    const tun = setup("c");
    let batches = 0;
    let packets = 0;
    tun.start({
      onPackets(b) {
        batches++;
        packets += b.count;
      },
      onError() {},
    });
    try {
      // Block the JS loop while 100 echo requests queue up in the TUN, then let it read.
      spawnSync("ip", ["netns", "exec", ns, "ping", "-q", "-c", "100", "-i", "0.001", "-w", "3", "10.77.0.2"], { stdio: "ignore" });
      await new Promise((r) => setTimeout(r, 50));
      expect(packets).toBeGreaterThanOrEqual(50);
      expect(packets).toBe(tun.stats.rxPackets);
      expect(batches).toBeLessThanOrEqual(Math.ceil(packets / 16)); // 64 per batch, some slack
    } finally {
      tun.close();
    }
  });

  it("reports ERR_TUN_GONE when the interface is deleted", async () => {
    const tun = setup("d");
    const err = await new Promise<TunError>((resolve) => {
      tun.start({ onPackets() {}, onError: resolve });
      ip("-n", ns, "link", "del", tun.name);
    });
    expect(err).toBeInstanceOf(TunError);
    expect(err.code).toBe("ERR_TUN_GONE");
    expect(err.syscallCode).toBe("EBADFD");
    tun.close();
  });

  it("linkUp() follows the link wherever it is; a write to a down or deleted link drops, never throws", () => {
    const tun = setup("l");
    const ns2 = `ltun2-${process.pid}`;
    ip("netns", "add", ns2);
    const pkt = echoReply(Uint8Array.from([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0]))!;
    try {
      expect(tun.linkUp()).toBe(true);
      expect(tun.write([pkt])).toBe(1);
      expect(tun.lastWriteError).toBeUndefined();
      ip("-n", ns, "link", "set", tun.name, "down");
      expect(tun.linkUp()).toBe(false);
      // Two packets, both refused (EIO): no throw, both counted as dropped.
      const dropped = tun.stats.txDropped;
      expect(tun.write([pkt, pkt])).toBe(0);
      expect(tun.lastWriteError).toBe("EIO");
      expect(tun.stats.txDropped).toBe(dropped + 2);
      // Moved to another namespace (netlink in ours cannot see it there) and renamed.
      ip("-n", ns, "link", "set", tun.name, "up");
      ip("-n", ns, "link", "set", tun.name, "netns", ns2);
      expect(tun.linkUp()).toBe(false);
      ip("-n", ns2, "link", "set", tun.name, "name", `ltr${process.pid}`.slice(0, 15));
      ip("-n", ns2, "link", "set", `ltr${process.pid}`.slice(0, 15), "up");
      expect(tun.linkUp()).toBe(true);
      expect(tun.write([pkt])).toBe(1);
      ip("-n", ns2, "link", "del", `ltr${process.pid}`.slice(0, 15));
      expect(() => tun.linkUp()).toThrow(expect.objectContaining({ code: "ERR_TUN_GONE" }));
      expect(tun.write([pkt])).toBe(0);
      expect(tun.lastWriteError).toBe("EBADFD");
    } finally {
      tun.close();
      spawnSync("ip", ["netns", "del", ns2]);
    }
  });

  it("rejects a bad name with ERR_TUN_OPEN", () => {
    expect(() => TunDevice.open({ name: "x".repeat(16) })).toThrow(TunError);
    try {
      TunDevice.open({ name: "bad name/x" });
      expect.unreachable();
    } catch (e) {
      expect((e as TunError).code).toBe("ERR_TUN_OPEN");
    }
  });
});
