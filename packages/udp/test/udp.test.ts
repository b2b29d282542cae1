import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { openUdp, UdpError, type UdpBatch, type UdpDatagram, type UdpOpenOptions, type UdpSocket } from "../src/index.js";

interface Got {
  data: Buffer;
  address: string;
  port: number;
  family: 4 | 6;
}

/** A socket that records every datagram it receives (copied out of the batch). */
function receiver(opts: Partial<UdpOpenOptions> = {}) {
  const got: Got[] = [];
  const batches: UdpBatch[] = [];
  const errors: UdpError[] = [];
  let wake: (() => void) | undefined;
  const sock = openUdp({
    port: 0,
    ...opts,
    onBatch(b) {
      batches.push(b);
      for (let i = 0; i < b.count; i++) got.push({ ...b.datagram(i), data: Buffer.from(b.payload(i)) });
      wake?.();
    },
    onError(e) {
      errors.push(e);
    },
  });
  open.push(sock);
  /** Resolves once `n` datagrams arrived; rejects after `ms`. */
  const waitFor = (n: number, ms = 5000) =>
    new Promise<void>((resolve, reject) => {
      if (got.length >= n) return resolve();
      const t = setTimeout(() => reject(new Error(`timeout: ${got.length}/${n} datagrams`)), ms);
      wake = () => {
        if (got.length >= n) {
          clearTimeout(t);
          wake = undefined;
          resolve();
        }
      };
    });
  return { sock, got, batches, errors, waitFor };
}

function sender(opts: Partial<UdpOpenOptions> = {}): UdpSocket {
  const s = openUdp({ port: 0, ...opts, onBatch: () => {}, onError: () => {} });
  open.push(s);
  return s;
}

/** Deterministic payload: seq number (when it fits) then a pattern derived from it. */
function payload(seq: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (seq * 31 + i * 7) & 0xff;
  if (size >= 4) b.writeUInt32BE(seq, 0);
  return b;
}

/** Payloads as base64, so that equality failures print readably and compare fast. */
const b64 = (xs: readonly Uint8Array[]) => xs.map((x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("base64"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const open: UdpSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const FAMILIES = [
  { family: 4 as const, address: "127.0.0.1" },
  { family: 6 as const, address: "::1" },
];

describe("openUdp", () => {
  it("binds a random port on a dual-stack socket and reports what the kernel granted", () => {
    const s = sender();
    expect(s.port).toBeGreaterThan(0);
    expect(s.family).toBe(6);
    expect(s.info.gso).toBe(true); // Linux >= 4.18
    expect(s.info.gro).toBe(true); // Linux >= 5.0
    // As root SO_RCVBUFFORCE grants the 7 MiB default (the kernel reports twice the size).
    if (process.getuid?.() === 0) expect(s.info.rcvbuf).toBeGreaterThanOrEqual(7 << 20);
  });

  it("rejects bad options naming the field, and a busy port with ERR_UDP_OPEN", () => {
    const bad = (o: Partial<UdpOpenOptions>) => () => openUdp({ port: 0, onBatch: () => {}, onError: () => {}, ...o });
    expect(bad({ port: 70000 })).toThrow(/port must be an integer in 0\.\.65535/);
    expect(bad({ batchSize: 0 })).toThrow(/batchSize/);
    expect(bad({ host: "not-an-ip" })).toThrow(expect.objectContaining({ code: "ERR_UDP_OPEN", syscallCode: "EINVAL" }));
    const s = sender();
    expect(bad({ port: s.port })).toThrow(expect.objectContaining({ code: "ERR_UDP_OPEN", syscallCode: "EADDRINUSE" }));
  });

  it("applies fwmark (root) and binds IPv4-only sockets", async () => {
    const r = receiver({ host: "127.0.0.1", fwmark: 0x51820 });
    expect(r.sock.family).toBe(4);
    const s = sender({ host: "127.0.0.1" });
    expect(s.sendBatch([{ data: payload(1, 10), address: "127.0.0.1", port: r.sock.port, family: 4 }])).toBe(1);
    await r.waitFor(1);
    expect(r.got[0]).toMatchObject({ address: "127.0.0.1", port: s.port, family: 4 });
    // An IPv6 destination on an IPv4 socket is a network condition: counted, not thrown.
    expect(s.sendBatch([{ data: payload(2, 10), address: "::1", port: r.sock.port, family: 6 }])).toBe(0);
    expect(s.stats()).toMatchObject({ txErrors: 1, txLastError: "EAFNOSUPPORT" });
  });
});

describe.each(FAMILIES)("exchange over IPv$family loopback", ({ family, address }) => {
  it.each([1, 7, 64, 200])("delivers a batch of %i datagrams in order with the sender's address", async (n) => {
    const r = receiver();
    const s = sender();
    const dgs: UdpDatagram[] = Array.from({ length: n }, (_, i) => ({ data: payload(i, 20 + i), address, port: r.sock.port, family }));
    expect(s.sendBatch(dgs)).toBe(n);
    await r.waitFor(n);
    expect(b64(r.got.map((g) => g.data))).toEqual(b64(dgs.map((d) => d.data)));
    for (const g of r.got) expect({ address: g.address, port: g.port, family: g.family }).toEqual({ address, port: s.port, family });
    const st = s.stats();
    expect(st.txDatagrams).toBe(n);
    expect(st.txSyscalls).toBe(Math.ceil(n / 64)); // distinct sizes: no GSO, one sendmmsg per 64
    expect(r.sock.stats().rxDatagrams).toBe(n);
    expect(r.errors).toEqual([]);
    if (n > 1) expect(r.batches.length).toBeLessThan(n); // recvmmsg batched them
  });

  it("carries sizes 0..65000 intact", async () => {
    const sizes = [0, 1, 3, 4, 100, 548, 1280, 1420, 1500, 8192, 9001, 32768, 65000, 0, 2];
    const r = receiver();
    const s = sender();
    const dgs = sizes.map((size, i) => ({ data: payload(i, size), address, port: r.sock.port, family }));
    expect(s.sendBatch(dgs)).toBe(sizes.length);
    await r.waitFor(sizes.length);
    expect(r.got.map((g) => g.data.length)).toEqual(sizes);
    expect(b64(r.got.map((g) => g.data))).toEqual(b64(dgs.map((d) => d.data)));
  });

  it("sends runs of equal-size datagrams as GSO and they arrive as separate datagrams, in order", async () => {
    for (const gro of [false, true]) {
      const r = receiver({ gro });
      const s = sender();
      // 150 x 1420 B (3 GSO messages of <= 64... capped by 65527 B: 46 per message), then a short tail.
      const dgs: UdpDatagram[] = Array.from({ length: 150 }, (_, i) => ({ data: payload(i, 1420), address, port: r.sock.port, family }));
      dgs.push({ data: payload(150, 700), address, port: r.sock.port, family });
      expect(s.sendBatch(dgs)).toBe(151);
      await r.waitFor(151);
      const st = s.stats();
      expect(st.txGsoMessages).toBeGreaterThanOrEqual(3);
      expect(st.txSyscalls).toBe(1); // one sendmmsg carried all GSO messages
      expect(r.got.map((g) => g.data.length)).toEqual(dgs.map((d) => d.data.length));
      expect(b64(r.got.map((g) => g.data))).toEqual(b64(dgs.map((d) => d.data)));
      expect(r.got.every((g) => g.port === s.port && g.address === address)).toBe(true);
      const rs = r.sock.stats();
      if (gro) expect(rs.rxGroMessages).toBeGreaterThan(0); // coalesced by the kernel, split by the addon
      else expect(rs.rxGroMessages).toBe(0);
    }
  });
});

describe("UdpSocket send paths", () => {
  it("interleaves destinations and families in one sendBatch", async () => {
    const r1 = receiver();
    const r2 = receiver();
    const s = sender();
    const dgs: UdpDatagram[] = [];
    for (let i = 0; i < 120; i++) {
      const to = i % 3 === 0 ? { address: "::1", port: r2.sock.port, family: 6 as const } : { address: "127.0.0.1", port: r1.sock.port, family: 4 as const };
      dgs.push({ data: payload(i, 1000), ...to });
    }
    expect(s.sendBatch(dgs)).toBe(120);
    await Promise.all([r1.waitFor(80), r2.waitFor(40)]);
    expect(b64(r1.got.map((g) => g.data))).toEqual(b64(dgs.filter((d) => d.family === 4).map((d) => d.data)));
    expect(b64(r2.got.map((g) => g.data))).toEqual(b64(dgs.filter((d) => d.family === 6).map((d) => d.data)));
    expect(r2.got[0]).toMatchObject({ address: "::1", family: 6, port: s.port });
  });

  it("sendTo sends many datagrams to one peer, with GSO", async () => {
    const r = receiver();
    const s = sender();
    const datas = Array.from({ length: 200 }, (_, i) => payload(i, 1420));
    expect(s.sendTo(datas, { address: "127.0.0.1", port: r.sock.port, family: 4 })).toBe(200);
    await r.waitFor(200);
    expect(b64(r.got.map((g) => g.data))).toEqual(b64(datas));
    expect(s.stats().txGsoMessages).toBeGreaterThan(0);
  });

  it("without GSO still batches with sendmmsg", async () => {
    const r = receiver();
    const s = sender({ gso: false });
    expect(s.info.gso).toBe(false);
    const datas = Array.from({ length: 200 }, (_, i) => payload(i, 1420));
    expect(s.sendTo(datas, { address: "::1", port: r.sock.port, family: 6 })).toBe(200);
    await r.waitFor(200);
    expect(b64(r.got.map((g) => g.data))).toEqual(b64(datas));
    expect(s.stats()).toMatchObject({ txGsoMessages: 0, txSyscalls: 4 });
  });

  it("throws ERR_UDP_BAD_DATAGRAM for bad input before sending anything", () => {
    const s = sender();
    const good = { data: payload(0, 10), address: "127.0.0.1", port: 9, family: 4 as const };
    const bad = (d: unknown) => () => s.sendBatch([good, d as UdpDatagram]);
    expect(bad({ ...good, address: "::1" })).toThrow(/datagrams\[1\]\.address "::1" is not an IPv4 address/);
    expect(bad({ ...good, address: "999.1.1.1" })).toThrow(expect.objectContaining({ code: "ERR_UDP_BAD_DATAGRAM" }));
    expect(bad({ ...good, port: 0 })).toThrow(/datagrams\[1\]\.port/);
    expect(bad({ ...good, family: 5 })).toThrow(/datagrams\[1\]\.family/);
    expect(bad({ ...good, data: "x" })).toThrow(/datagrams\[1\]\.data/);
    expect(s.stats().txSyscalls).toBe(0);
  });

  it("counts datagrams the kernel refuses instead of throwing", async () => {
    const r = receiver();
    const s = sender();
    const dgs: UdpDatagram[] = [
      { data: payload(0, 10), address: "127.0.0.1", port: r.sock.port, family: 4 },
      { data: Buffer.alloc(65600), address: "127.0.0.1", port: r.sock.port, family: 4 }, // > 65507: EMSGSIZE
      { data: payload(2, 10), address: "127.0.0.1", port: r.sock.port, family: 4 },
    ];
    expect(s.sendBatch(dgs)).toBe(2);
    expect(s.stats()).toMatchObject({ txErrors: 1, txLastError: "EMSGSIZE", drops: 1 });
    await r.waitFor(2);
    expect(b64(r.got.map((g) => g.data))).toEqual(b64([dgs[0]!.data, dgs[2]!.data]));
  });
});

describe("receive batches", () => {
  it("counts datagrams the kernel dropped because the receive buffer was full", async () => {
    const r = receiver({ rcvbuf: 16384 });
    const s = sender({ gso: false });
    const datas = Array.from({ length: 500 }, (_, i) => payload(i, 1420));
    expect(s.sendTo(datas, { address: "127.0.0.1", port: r.sock.port, family: 4 })).toBe(500);
    await sleep(50);
    const st = r.sock.stats();
    expect(st.rxDrops).toBeGreaterThan(0);
    expect(r.got.length + st.rxDrops).toBe(500);
    expect(st.drops).toBe(st.rxDrops);
    expect(st.rxDatagrams).toBe(r.got.length);
  });

  it("hands out a fresh buffer per batch that later batches never overwrite", async () => {
    const r = receiver({ batchSize: 8 });
    const s = sender({ gso: false });
    const datas = Array.from({ length: 64 }, (_, i) => payload(i, 1200 + i));
    expect(s.sendTo(datas, { address: "127.0.0.1", port: r.sock.port, family: 4 })).toBe(64);
    await r.waitFor(64);
    expect(r.batches.length).toBeGreaterThanOrEqual(8); // at most 8 per recvmmsg
    expect(new Set(r.batches.map((b) => b.data.buffer)).size).toBe(r.batches.length);
    const views = r.batches.flatMap((b) => Array.from({ length: b.count }, (_, i) => b.payload(i)));
    expect(b64(views)).toEqual(b64(datas));
  });

  it("stops delivering once closed inside onBatch, while the sender keeps flooding", async () => {
    let calls = 0;
    let sock: UdpSocket | undefined;
    sock = openUdp({
      port: 0,
      batchSize: 4,
      onBatch() {
        calls++;
        sock!.close();
        sock!.close(); // idempotent
      },
      onError: () => {},
    });
    open.push(sock);
    const s = sender();
    const to = { address: "::1", port: sock.port, family: 6 as const };
    const datas = Array.from({ length: 256 }, (_, i) => payload(i, 100 + (i % 7)));
    for (let round = 0; round < 5; round++) {
      s.sendTo(datas, to);
      await sleep(5);
    }
    expect(calls).toBe(1);
    expect(sock.closed).toBe(true);
    expect(sock.stats().rxBatches).toBe(1);
    expect(sock.sendTo(datas, to)).toBe(0);
    // The port is free again.
    const again = receiver({ port: sock.port });
    expect(again.sock.port).toBe(sock.port);
  });

  it("survives the sender closing mid-flood and the receiver closing with data queued", async () => {
    const r = receiver();
    const s = sender();
    const to = { address: "127.0.0.1", port: r.sock.port, family: 4 as const };
    const datas = Array.from({ length: 1000 }, (_, i) => payload(i, 1420));
    s.sendTo(datas, to);
    s.close();
    expect(s.sendTo(datas, to)).toBe(0);
    expect(s.stats().txDatagrams).toBe(1000);
    await r.waitFor(1);
    r.sock.close(); // more are queued in the kernel
    const n = r.got.length;
    await sleep(20);
    expect(r.got.length).toBe(n);
  });
});

const ADDON = fileURLToPath(new URL("../build/Release/lattice_udp.node", import.meta.url));

/**
 * Runs `script` (CommonJS; `n` is the addon; it must print one JSON line) with node in a
 * private network namespace prepared by the `ip`/`tc` commands in `setup` (run inside it).
 * The namespace is deleted afterwards.
 */
function inNetns<T>(setup: string[][], script: string): T {
  const ns = `lattice-udp-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), "lattice-udp-"));
  try {
    execFileSync("ip", ["netns", "add", ns]);
    for (const cmd of setup) execFileSync("ip", ["netns", "exec", ns, ...cmd]);
    const file = join(dir, "script.cjs");
    writeFileSync(file, `const n = require(${JSON.stringify(ADDON)});\n${script}`);
    return JSON.parse(execFileSync("ip", ["netns", "exec", ns, process.execPath, file], { encoding: "utf8" })) as T;
  } finally {
    try {
      execFileSync("ip", ["netns", "del", ns]);
    } catch {
      // never created
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

interface NsResult {
  sent: number;
  ms: number;
  sizes: number[];
  tx: { txSyscalls: number; txGsoMessages: number; txErrors: number; txDrops: number; txLastError?: string };
}

const OPEN = (sndbuf: number, onBatch = "() => {}") =>
  `n.open("::", 0, false, 0, 1 << 20, ${sndbuf}, true, true, 64, 16, ${onBatch}, () => {})`;
const SEND = (to: string, port: string, datas: string, waitMs = 0) => `
  const dst = new Uint32Array(5); dst.set(new Uint32Array(n.parseAddress(${JSON.stringify(to)}, 4).buffer)); dst[4] = ${port};
  const datas = ${datas};
  const t0 = performance.now();
  const sent = n.send(tx.handle, datas, dst, 0, datas.length, ${waitMs});
  const ms = performance.now() - t0;`;

describe.skipIf(process.getuid?.() !== 0)("in a private network namespace (root)", () => {
  it("resends datagrams one by one when the kernel refuses a GSO message", () => {
    // Loopback MTU 1500: a GSO message of 3000-byte segments exceeds the path MTU, the
    // kernel refuses it, and the addon resends the datagrams one by one (then fragmented).
    const out = inNetns<NsResult>(
      [["ip", "link", "set", "lo", "mtu", "1500", "up"]],
      `const sizes = [];
      const rx = ${OPEN(1 << 20, "(d, m, a, c) => { for (let i = 0; i < c; i++) sizes.push(m[i * 5 + 1]); }")};
      const tx = ${OPEN(1 << 20)};
      ${SEND("127.0.0.1", "rx.port", "Array.from({ length: 30 }, (_, i) => Buffer.alloc(3000, i))")}
      setTimeout(() => { console.log(JSON.stringify({ sent, ms, sizes, tx: n.stats(tx.handle) })); n.close(rx.handle); n.close(tx.handle); }, 300);`,
    );
    expect(out.sent).toBe(30);
    expect(out.sizes).toEqual(Array(30).fill(3000));
    expect(out.tx.txGsoMessages).toBe(0); // both GSO messages (21 + 9 segments) were refused
    expect(out.tx.txSyscalls).toBe(2 + 30); // two refused sendmmsg, then one sendmsg each
    expect(out.tx.txErrors).toBe(0);
  });

  it.each([0, 30])("drops and counts datagrams when the send buffer is full (sendWaitMs %i)", (waitMs) => {
    // A veth whose qdisc (tbf, 8 kbit/s) holds packets: with a 4 KiB send buffer the socket
    // soon returns EAGAIN. Traffic goes to a static neighbour and never leaves the namespace.
    const out = inNetns<NsResult>(
      [
        ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        ["ip", "addr", "add", "10.99.0.1/24", "dev", "v0"],
        ["ip", "link", "set", "v0", "up"],
        ["ip", "link", "set", "v1", "up"],
        ["ip", "neigh", "add", "10.99.0.3", "lladdr", "02:00:00:00:00:01", "dev", "v0"],
        ["tc", "qdisc", "add", "dev", "v0", "root", "tbf", "rate", "8kbit", "burst", "2000", "latency", "60s"],
      ],
      `const tx = ${OPEN(4096)};
      ${SEND("10.99.0.3", "9", "Array.from({ length: 100 }, (_, i) => Buffer.alloc(1000 + i, i))", waitMs)}
      console.log(JSON.stringify({ sent, ms, sizes: [], tx: n.stats(tx.handle) }));
      n.close(tx.handle);`,
    );
    expect(out.sent).toBeGreaterThan(0);
    expect(out.sent).toBeLessThan(20);
    expect(out.tx.txDrops).toBe(100 - out.sent);
    expect(out.tx.txLastError).toBe("EAGAIN");
    if (waitMs > 0) expect(out.ms).toBeGreaterThanOrEqual(waitMs - 1); // waited once for POLLOUT
  });
});

describe("lifecycle", () => {
  it("closes sockets left open when a worker thread is terminated", async () => {
    const code = `
      const { parentPort } = require("node:worker_threads");
      const n = require(${JSON.stringify(ADDON)});
      const r = n.open("::", 0, false, 0, 1 << 20, 1 << 20, true, true, 64, 16, () => {}, () => {});
      parentPort.postMessage(r.port);`;
    const w = new Worker(code, { eval: true });
    const port = await new Promise<number>((resolve, reject) => {
      w.once("message", resolve);
      w.once("error", reject);
    });
    expect(await w.terminate()).toBe(1);
    const again = receiver({ port }); // EADDRINUSE if the worker's socket leaked
    expect(again.sock.port).toBe(port);
  });

  it("keeps an open socket alive when nothing else refers to it", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const n = (await import("../src/native.js")).loadNative();
    let weak: WeakRef<object> | undefined;
    let received = 0;
    let closed = false;
    const port = (() => {
      const r = n.open("::", 0, false, 0, 1 << 20, 1 << 20, true, true, 64, 16, (_d, _m, _a, count) => {
        received += count;
        const h = weak?.deref();
        if (h) {
          n.close(h as never);
          closed = true;
        }
      }, () => {});
      weak = new WeakRef(r.handle);
      return r.port;
    })();
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(10);
    }
    expect(weak!.deref()).toBeDefined();
    const s = sender();
    s.sendTo([payload(1, 10)], { address: "::1", port, family: 6 });
    for (let i = 0; i < 100 && received === 0; i++) await sleep(10);
    expect(received).toBe(1);
    expect(closed).toBe(true);
  });
});
