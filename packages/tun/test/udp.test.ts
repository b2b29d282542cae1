import { describe, expect, it } from "vitest";
import { ADDR_RECORD_BYTES, BatchUdpSocket, decodeAddress, encodeAddress, packetAt, type UdpAddress } from "../src/index.js";

describe("address records", () => {
  it("round-trip IPv4 and IPv6 text", () => {
    const rec = new Uint8Array(ADDR_RECORD_BYTES);
    const cases: UdpAddress[] = [
      { family: 4, address: "192.0.2.7", port: 51820 },
      { family: 6, address: "::1", port: 1 },
      { family: 6, address: "fd7a:115c:a1e0::53", port: 65535 },
      { family: 6, address: "2001:db8:1:2:3:4:5:6", port: 443 },
      { family: 6, address: "fe80::", port: 9 },
      { family: 4, address: "10.0.0.3", port: 10000, src: { address: "10.0.0.2", ifindex: 7 } },
      { family: 6, address: "fd00:aa::3", port: 10000, src: { address: "fe80::1", ifindex: 0x01020304 } },
    ];
    for (const c of cases) {
      expect(encodeAddress(c, rec, 0)).toBe(true);
      expect(decodeAddress(rec, 0)).toEqual(c);
    }
    expect(encodeAddress({ family: 6, address: "1::2::3", port: 1 }, rec, 0)).toBe(false);
    expect(encodeAddress({ family: 4, address: "10.0.0.300", port: 1 }, rec, 0)).toBe(false);
    // A source of the other family is left out.
    expect(encodeAddress({ family: 4, address: "10.0.0.3", port: 1, src: { address: "fd00::1", ifindex: 1 } }, rec, 0)).toBe(true);
    expect(decodeAddress(rec, 0)).toEqual({ family: 4, address: "10.0.0.3", port: 1 });
  });
});

async function exchange(from: BatchUdpSocket, to: BatchUdpSocket, dst: UdpAddress, n: number) {
  const got: { data: string; from: UdpAddress }[] = [];
  let batches = 0;
  const done = new Promise<void>((resolve, reject) => {
    to.start({
      onDatagrams(b) {
        batches++;
        for (let i = 0; i < b.count; i++) {
          got.push({ data: Buffer.from(packetAt(b, i)).toString(), from: decodeAddress(b.addrs, i * ADDR_RECORD_BYTES) });
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
      const { got, batches, msgs } = await exchange(a, b, { family: 4, address: "127.0.0.1", port: b.port }, 200);
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
                const from = decodeAddress(batch.addrs, i * ADDR_RECORD_BYTES);
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
      const to: UdpAddress[] = [];
      for (let i = 0; i < want; i++) {
        const dst = i < 200 ? b : i % 2 ? b : c;
        const size = i === 50 ? 700 : 1200;
        msgs.push(Buffer.from(`m${String(i).padStart(4, "0")}`.padEnd(size, ".")));
        to.push({ family: 4, address: "127.0.0.1", port: dst.port, ...(i < 200 ? { src: { address: "127.0.0.2", ifindex: 0 } } : {}) });
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
      const { got } = await exchange(a, b, { family: 6, address: "::1", port: b.port }, 10);
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
      expect(() => BatchUdpSocket.bind({ port: a.port })).toThrow(expect.objectContaining({ code: "ERR_UDP_BIND", syscallCode: "EADDRINUSE" }));
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
