import { describe, expect, it } from "vitest";
import { parseIp } from "@lattice/netaddr";
import { Filter } from "@lattice/filter";
import { buildEchoRequest, parseEchoReply } from "../../src/latticed/icmp.js";

function csum(b: Uint8Array, off: number, len: number, acc = 0): number {
  for (let i = 0; i + 1 < len; i += 2) acc += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len & 1) acc += b[off + len - 1]! << 8;
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

/** Turns an echo request into the reply a host would send (swap addresses, type 0/129, fix checksums). */
function reply(req: Uint8Array): Uint8Array {
  const p = Uint8Array.from(req);
  if (p[0]! >> 4 === 4) {
    p.set(req.subarray(16, 20), 12);
    p.set(req.subarray(12, 16), 16);
    p[20] = 0;
    p[22] = p[23] = 0;
    const c = ~csum(p, 20, p.length - 20) & 0xffff;
    p[22] = c >> 8;
    p[23] = c & 0xff;
  } else {
    p.set(req.subarray(24, 40), 8);
    p.set(req.subarray(8, 24), 24);
    p[40] = 129;
  }
  return p;
}

describe("ICMP echo (RFC 792 / RFC 4443)", () => {
  it("builds an IPv4 echo request with valid header and ICMP checksums", () => {
    const p = buildEchoRequest(parseIp("100.64.0.1")!.bytes, parseIp("100.64.0.2")!.bytes, 0x1234, 7, new Uint8Array(16));
    expect(p.length).toBe(20 + 8 + 16);
    expect(csum(p, 0, 20)).toBe(0xffff);
    expect(csum(p, 20, p.length - 20)).toBe(0xffff);
    expect([p[9], p[20]]).toEqual([1, 8]);
  });

  it("builds an IPv6 echo request whose checksum covers the pseudo-header", () => {
    const p = buildEchoRequest(parseIp("fd7a:115c:a1e0::1")!.bytes, parseIp("fd7a:115c:a1e0::2")!.bytes, 1, 2, new Uint8Array(8));
    const len = p.length - 40;
    expect(csum(p, 40, len, csum(p, 8, 32) + len + 58)).toBe(0xffff);
    expect([p[6], p[40]]).toEqual([58, 128]);
  });

  it("recognises the matching echo reply and nothing else", () => {
    const req4 = buildEchoRequest(parseIp("100.64.0.1")!.bytes, parseIp("100.64.0.2")!.bytes, 0xbeef, 3, new Uint8Array(4));
    const r = parseEchoReply(reply(req4))!;
    expect([Array.from(r.src), r.id, r.seq]).toEqual([[100, 64, 0, 2], 0xbeef, 3]);
    expect(parseEchoReply(req4)).toBeNull();
    const req6 = buildEchoRequest(parseIp("fd7a:115c:a1e0::1")!.bytes, parseIp("fd7a:115c:a1e0::2")!.bytes, 9, 1, new Uint8Array(8));
    expect(parseEchoReply(reply(req6))!.id).toBe(9);
    expect(parseEchoReply(new Uint8Array(10))).toBeNull();
  });

  it("the packet filter accepts the request as well-formed ICMP (a rule allows it)", () => {
    const f = Filter.fromRules([{ SrcIPs: ["100.64.0.1"], DstPorts: [{ IP: "100.64.0.2", Ports: { First: 0, Last: 65535 } }] }], ["100.64.0.2/32"]);
    const p = buildEchoRequest(parseIp("100.64.0.1")!.bytes, parseIp("100.64.0.2")!.bytes, 1, 1, new Uint8Array(8));
    expect(f.runIn(p, 0)).toMatchObject({ accept: true, reason: "icmp" });
  });
});
