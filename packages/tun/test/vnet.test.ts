/**
 * TUN offloads (IFF_VNET_HDR), against real kernel sockets in a private netns with a
 * hand-made TCP peer on the TUN side: TCP coalescing on writes (one write batch of
 * segments reaches the application intact, as one kernel packet) and TSO splitting on
 * reads (the kernel's 64 KB packets come out as valid MTU-sized segments).
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packetAt, TunDevice } from "../src/index.js";

const isRoot = process.getuid?.() === 0;
const ns = `lvnet-${process.pid}`;
const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8" });
const ME = [10, 78, 0, 2];
const KERNEL = [10, 78, 0, 1];

function sum(b: Uint8Array, s = 0): number {
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  return s;
}
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** An IPv4/TCP segment from ME:sport to KERNEL:dport with correct checksums. */
function segment(o: { sport: number; dport: number; seq: number; ack: number; flags: number; id: number; payload?: Uint8Array; src?: number[]; dst?: number[]; mss?: number }): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const src = o.src ?? ME;
  const dst = o.dst ?? KERNEL;
  const opt = o.mss ? 4 : 0;
  const p = new Uint8Array(40 + opt + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(4, o.id);
  p[6] = 0x40; // DF
  p[8] = 64;
  p[9] = 6;
  p.set(src, 12);
  p.set(dst, 16);
  v.setUint16(10, ~fold(sum(p.subarray(0, 20))) & 0xffff);
  v.setUint16(20, o.sport);
  v.setUint16(22, o.dport);
  v.setUint32(24, o.seq >>> 0);
  v.setUint32(28, o.ack >>> 0);
  p[32] = (5 + opt / 4) << 4;
  p[33] = o.flags;
  v.setUint16(34, 65535);
  if (o.mss) {
    p.set([2, 4, o.mss >> 8, o.mss & 0xff], 40);
  }
  p.set(payload, 40 + opt);
  const pseudo = new Uint8Array(12);
  pseudo.set(src, 0);
  pseudo.set(dst, 4);
  pseudo[9] = 6;
  new DataView(pseudo.buffer).setUint16(10, 20 + opt + payload.length);
  v.setUint16(36, ~fold(sum(p.subarray(20), sum(pseudo))) & 0xffff);
  return p;
}

const SYN = 0x02;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;

function rxPackets(name: string): number {
  const j = JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", name)) as Array<{ stats64: { rx: { packets: number } } }>;
  return j[0]!.stats64.rx.packets;
}

describe.runIf(isRoot)("TUN offloads (root, private netns)", () => {
  beforeAll(() => void ip("netns", "add", ns));
  afterAll(() => void ip("netns", "del", ns));

  it("delivers a batch of in-order TCP segments intact as one super-packet", async () => {
    const tun = TunDevice.open({ name: `ltv${process.pid}`.slice(0, 15), mtu: 1420, vnetHdr: true });
    ip("link", "set", tun.name, "netns", ns);
    ip("-n", ns, "addr", "add", "10.78.0.1/24", "dev", tun.name);
    ip("-n", ns, "link", "set", tun.name, "up");
    const server = spawn("ip", [
      "netns", "exec", ns, process.execPath, "-e",
      `const h=require("crypto").createHash("sha256");let n=0;const srv=require("net").createServer(s=>{s.on("data",d=>{h.update(d);n+=d.length});s.on("end",()=>{process.stdout.write(n+" "+h.digest("hex")+"\\n");s.end();srv.close()})}).listen(7000,"10.78.0.1",()=>process.stdout.write("listening\\n"))`,
    ]);
    let out = "";
    server.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const waitOut = async (re: RegExp): Promise<string> => {
      for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 25));
      return out;
    };
    const synAcks: { seq: number; ack: number }[] = [];
    tun.start({
      onPackets(b) {
        for (let i = 0; i < b.count; i++) {
          const p = packetAt(b, i);
          if (p[0]! >> 4 !== 4 || p[9] !== 6) continue;
          const v = new DataView(p.buffer, p.byteOffset, p.length);
          if ((p[33]! & (SYN | ACK)) === (SYN | ACK)) synAcks.push({ seq: v.getUint32(24), ack: v.getUint32(28) });
        }
      },
      onError() {},
    });
    try {
      expect(await waitOut(/listening/)).toContain("listening");
      const sport = 40000;
      const isn = 1000;
      tun.write([segment({ sport, dport: 7000, seq: isn, ack: 0, flags: SYN, id: 1 })]);
      for (let i = 0; i < 100 && synAcks.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(synAcks).toHaveLength(1);
      expect(synAcks[0]!.ack).toBe(isn + 1);
      const ack = (synAcks[0]!.seq + 1) >>> 0;
      tun.write([segment({ sport, dport: 7000, seq: isn + 1, ack, flags: ACK, id: 2 })]);

      const data = randomBytes(20 * 1000);
      const batch: Uint8Array[] = [];
      for (let k = 0; k < 20; k++) {
        const last = k === 19;
        batch.push(segment({ sport, dport: 7000, seq: isn + 1 + k * 1000, ack, flags: ACK | (last ? PSH : 0), id: 3 + k, payload: data.subarray(k * 1000, (k + 1) * 1000) }));
      }
      batch.push(segment({ sport, dport: 7000, seq: isn + 1 + data.length, ack, flags: FIN | ACK, id: 23 }));
      const before = rxPackets(tun.name);
      expect(tun.write(batch)).toBe(21);
      const delta = rxPackets(tun.name) - before;
      expect(delta).toBe(2); // 20 data segments as one GSO packet, then the FIN

      const line = await waitOut(/^\d+ [0-9a-f]{64}$/m);
      expect(line.trim().split("\n").pop()).toBe(`${data.length} ${createHash("sha256").update(data).digest("hex")}`);
    } finally {
      server.kill();
      tun.close();
    }
  });

  it("splits the kernel's TSO packets into valid MTU-sized segments carrying the exact stream", async () => {
    const tun = TunDevice.open({ name: `ltt${process.pid}`.slice(0, 15), mtu: 1420, vnetHdr: true, offload: true });
    ip("link", "set", tun.name, "netns", ns);
    ip("-n", ns, "addr", "add", "10.79.0.1/24", "dev", tun.name);
    ip("-n", ns, "link", "set", tun.name, "up");
    const US = [10, 79, 0, 2];
    const THEM = [10, 79, 0, 1];
    const data = randomBytes(600_000);
    const dir = mkdtempSync(join(tmpdir(), "lvnet-"));
    const file = join(dir, "data");
    writeFileSync(file, data);
    const chunks = new Map<number, Buffer>();
    let isnThem = 0;
    let next = 0; // next expected offset in the stream
    let finSeen = false;
    let dataPackets = 0;
    let bad = "";
    const done = new Promise<void>((resolve) => {
      tun.start({
        onPackets(b) {
          const out: Uint8Array[] = [];
          for (let i = 0; i < b.count; i++) {
            const p = packetAt(b, i);
            if (p[0]! >> 4 !== 4 || p[9] !== 6) continue;
            const v = new DataView(p.buffer, p.byteOffset, p.length);
            if (p.length > 1420) bad ||= `packet of ${p.length} bytes exceeds the MTU`;
            if (v.getUint16(2) !== p.length) bad ||= "IPv4 total length mismatch";
            if (fold(sum(p.subarray(0, 20))) !== 0xffff) bad ||= "bad IPv4 header checksum";
            const pseudo = new Uint8Array(12);
            pseudo.set(p.subarray(12, 20), 0);
            pseudo[9] = 6;
            new DataView(pseudo.buffer).setUint16(10, p.length - 20);
            if (fold(sum(p.subarray(20), sum(pseudo))) !== 0xffff) bad ||= "bad TCP checksum";
            const sport = v.getUint16(20);
            const seq = v.getUint32(24);
            const flags = p[33]!;
            const thl = (p[32]! >> 4) * 4;
            if (flags & SYN) {
              isnThem = seq;
              out.push(segment({ src: US, dst: THEM, sport: 7000, dport: sport, seq: 5000, ack: (seq + 1) >>> 0, flags: SYN | ACK, id: 1, mss: 1380 }));
              continue;
            }
            const payload = p.subarray(20 + thl);
            if (payload.length > 0) {
              dataPackets++;
              const off = (seq - isnThem - 1) >>> 0;
              if (!chunks.has(off)) chunks.set(off, Buffer.from(payload));
              while (chunks.has(next)) next += chunks.get(next)!.length;
            }
            if (flags & FIN) finSeen = true;
            const fin = finSeen && next === data.length ? 1 : 0;
            out.push(segment({ src: US, dst: THEM, sport: 7000, dport: sport, seq: 5001, ack: (isnThem + 1 + next + fin) >>> 0, flags: ACK, id: 2 }));
            if (fin) resolve();
          }
          if (out.length > 0) tun.write(out);
        },
        onError() {},
      });
    });
    const txBefore = (JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", tun.name)) as Array<{ stats64: { tx: { packets: number } } }>)[0]!.stats64.tx.packets;
    const client = spawn("ip", ["netns", "exec", ns, process.execPath, "-e",
      `const s=require("net").connect(7000,"10.79.0.2",()=>require("fs").createReadStream(process.argv[1]).pipe(s));s.on("error",()=>{})`, file], { stdio: "ignore" });
    try {
      await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error(`stalled at ${next}/${data.length}`)), 20_000))]);
      expect(bad).toBe("");
      const got = Buffer.concat([...chunks.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c)).subarray(0, next);
      expect(got.equals(data)).toBe(true);
      const txDelta = (JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", tun.name)) as Array<{ stats64: { tx: { packets: number } } }>)[0]!.stats64.tx.packets - txBefore;
      // The kernel sent fewer (super-)packets than the segments we got: TSO was used.
      expect(dataPackets).toBeGreaterThan(txDelta);
    } finally {
      client.kill();
      tun.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

