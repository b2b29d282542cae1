import { describe, expect, it } from "vitest";
import { ENDPOINT_BYTES, Endpoint } from "@lattice/netaddr";
import { packetAt } from "@lattice/tun";
import { ADDR_RECORD_BYTES, BatchUdpSocket, endpointAt } from "../src/index.js";

/** An endpoint as plain data (for toEqual). */
const plain = (e: Endpoint) => ({ family: e.family, address: e.address, port: e.port, ...(e.src ? { src: e.src } : {}) });
const ep = (address: string, port: number, src?: { address: string; ifindex: number }): Endpoint => Endpoint.fromAddress(address, port, src)!;

describe("endpoint records", () => {
  it("are netaddr endpoints: what the addon writes is what endpointAt reads", () => {
    const cases = [
      ep("192.0.2.7", 51820),
      ep("fd7a:115c:a1e0::53", 65535),
      ep("10.0.0.3", 10000, { address: "10.0.0.2", ifindex: 7 }),
      ep("fd00:aa::3", 10000, { address: "fe80::1", ifindex: 0x01020304 }),
    ];
    const addrs = new Uint8Array(cases.length * ADDR_RECORD_BYTES);
    cases.forEach((c, i) => addrs.set(c.bytes, i * ADDR_RECORD_BYTES));
    const batch = { buffer: new Uint8Array(0), offsets: new Uint32Array(4), lengths: new Uint32Array(4), count: 4, addrs };
    cases.forEach((c, i) => expect(plain(endpointAt(batch, i))).toEqual(plain(c)));
    expect(ADDR_RECORD_BYTES).toBe(ENDPOINT_BYTES);
  });
});

async function exchange(from: BatchUdpSocket, to: BatchUdpSocket, dst: Endpoint, n: number) {
  const got: { data: string; from: ReturnType<typeof plain> }[] = [];
  let batches = 0;
  const done = new Promise<void>((resolve, reject) => {
    to.start({
      onDatagrams(b) {
        batches++;
        for (let i = 0; i < b.count; i++) {
          got.push({ data: Buffer.from(packetAt(b, i)).toString(), from: plain(endpointAt(b, i)) });
        }
        if (got.length >= n) resolve();
      },
      onError: reject,
    });
  });
  const msgs = Array.from({ length: n }, (_, i) => Buffer.from(`datagram ${i} `.padEnd(100 + i, "x")));
  expect(from.send(msgs, msgs.map(() => dst))).toBe(n);
  await done;
  return { got, batches, msgs };
}

describe("BatchUdpSocket", () => {
  it("sends and receives batches over IPv4 loopback on a dual-stack socket", async () => {
    const a = BatchUdpSocket.bind({ port: 0 });
    const b = BatchUdpSocket.bind({ port: 0 });
    try {
      expect(a.port).toBeGreaterThan(0);
      const { got, batches, msgs } = await exchange(a, b, ep("127.0.0.1", b.port), 200);
      expect(got.map((g) => g.data)).toEqual(msgs.map((m) => m.toString()));
      expect(got[0]!.from).toEqual({ family: 4, address: "127.0.0.1", port: a.port, src: { address: "127.0.0.1", ifindex: 1 } });
      expect(batches).toBeLessThan(200); // recvmmsg batched them
      expect(b.stats.rxDatagrams).toBe(200);
    } finally {
      a.close();
      b.close();
    }
  });

  it("coalesces same-size runs with GSO and splits GRO batches back into datagrams", async () => {
    const a = BatchUdpSocket.bind({ port: 0, gso: true });
    const b = BatchUdpSocket.bind({ port: 0 });
    const c = BatchUdpSocket.bind({ port: 0 });
    try {
      expect(b.gro).toBe(true);
      const got: { from: number; fromAddr: string; to: number; text: string }[] = [];
      const want = 300;
      const done = new Promise<void>((resolve) => {
        for (const s of [b, c]) {
          s.start({
            onDatagrams(batch) {
              for (let i = 0; i < batch.count; i++) {
                const from = endpointAt(batch, i);
                got.push({ from: from.port, fromAddr: from.address, to: s.port, text: Buffer.from(packetAt(batch, i)).toString() });
              }
              if (got.length >= want) resolve();
            },
            onError() {},
          });
        }
      });
      // Runs of equal sizes to b, a short one ending a run, then interleaved destinations.
      // The first 200 name a source (127.0.0.2, also on loopback): UDP_SEGMENT + IP_PKTINFO.
      const msgs: Buffer[] = [];
      const to: Endpoint[] = [];
      for (let i = 0; i < want; i++) {
        const dst = i < 200 ? b : i % 2 ? b : c;
        const size = i === 50 ? 700 : 1200;
        msgs.push(Buffer.from(`m${String(i).padStart(4, "0")}`.padEnd(size, ".")));
        to.push(ep("127.0.0.1", dst.port, i < 200 ? { address: "127.0.0.2", ifindex: 0 } : undefined));
      }
      expect(a.send(msgs, to)).toBe(want);
      await done;
      const toB = got.filter((g) => g.to === b.port).map((g) => g.text);
      const toC = got.filter((g) => g.to === c.port).map((g) => g.text);
      const wantB = msgs.filter((_, i) => to[i]!.port === b.port).map(String);
      const wantC = msgs.filter((_, i) => to[i]!.port === c.port).map(String);
      expect(toB).toEqual(wantB); // same bytes, same boundaries, same order
      expect(toC).toEqual(wantC);
      expect(got.every((g) => g.from === a.port)).toBe(true);
      expect(got.filter((g) => g.fromAddr === "127.0.0.2").map((g) => g.text)).toEqual(msgs.slice(0, 200).map(String));
      expect(b.stats.rxBatches).toBeLessThan(100);
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });

  it("sends and receives over IPv6 loopback", async () => {
    const a = BatchUdpSocket.bind({ port: 0 });
    const b = BatchUdpSocket.bind({ port: 0 });
    try {
      const { got } = await exchange(a, b, ep("::1", b.port), 10);
      expect(got.length).toBe(10);
      expect(got[0]!.from).toEqual({ family: 6, address: "::1", port: a.port, src: { address: "::1", ifindex: 1 } });
    } finally {
      a.close();
      b.close();
    }
  });

  it("fails to bind a port in use with ERR_UDP_BIND", () => {
    const a = BatchUdpSocket.bind({ port: 0 });
    try {
      expect(() => BatchUdpSocket.bind({ port: a.port })).toThrow(expect.objectContaining({ name: "UdpError", code: "ERR_UDP_BIND", syscallCode: "EADDRINUSE" }));
    } finally {
      a.close();
    }
  });

  it("sets SO_MARK", () => {
    const a = BatchUdpSocket.bind({ port: 0 });
    try {
      if (process.getuid?.() === 0) expect(() => a.setMark(0x1234)).not.toThrow();
      else expect(() => a.setMark(0x1234)).toThrow();
    } finally {
      a.close();
    }
  });
});
