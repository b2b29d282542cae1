import dnsPacket from "dns-packet";
import type { DecodedPacket, Packet, Question } from "dns-packet";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_UDP_PAYLOAD, QUAD100_PTR, RCODE, Resolver, Zone, servfail, type Decision } from "../src/index.js";

const zone = Zone.build({
  domain: "tail.example",
  hosts: [
    { name: "alpha.tail.example.", addresses: ["100.64.0.1/32", "fd7a:115c:a1e0::1/128"] },
    { name: "beta.tail.example.", addresses: ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"] },
  ],
});

function query(q: Question, extra: Partial<Packet> = {}): Uint8Array {
  return dnsPacket.encode({ type: "query", id: 0x1234, flags: dnsPacket.RECURSION_DESIRED, questions: [q], ...extra });
}

function decoded(d: Decision): DecodedPacket & { rcode: string } {
  expect(d.kind).toBe("answer");
  if (d.kind !== "answer") throw new Error("not an answer");
  return dnsPacket.decode(Buffer.from(d.response)) as DecodedPacket & { rcode: string };
}

const r = new Resolver(zone);

/** The ip6.arpa name of 32 hex nibbles. */
function ip6Arpa(hex: string): string {
  expect(hex).toHaveLength(32);
  return [...hex].reverse().join(".") + ".ip6.arpa";
}

describe("MagicDNS resolver: tailnet names", () => {
  it("answers A for the short name and the FQDN, authoritative, id and question kept", () => {
    for (const name of ["beta", "beta.tail.example", "BeTa.Tail.Example."]) {
      const p = decoded(r.handle(query({ type: "A", name })));
      expect(p.id).toBe(0x1234);
      expect(p.rcode).toBe("NOERROR");
      expect(p.flag_aa && p.flag_qr && p.flag_rd && p.flag_ra).toBe(true);
      const asked = name.replace(/\.$/, "");
      expect(p.questions).toEqual([{ type: "A", name: asked, class: "IN" }]);
      expect(p.answers?.map((a) => [a.type, a.name, a.data, a.ttl])).toEqual([["A", asked, "100.64.0.2", 600]]);
    }
  });

  it("answers AAAA with the IPv6 address", () => {
    const p = decoded(r.handle(query({ type: "AAAA", name: "alpha.tail.example" })));
    expect(p.answers?.map((a) => a.data)).toEqual(["fd7a:115c:a1e0::1"]);
  });

  it("a known name with another type: NOERROR, no data, SOA", () => {
    const p = decoded(r.handle(query({ type: "MX", name: "beta.tail.example" })));
    expect(p.rcode).toBe("NOERROR");
    expect(p.answers).toEqual([]);
    expect(p.authorities?.[0]?.type).toBe("SOA");
  });

  it("unknown name under the domain: NXDOMAIN with the zone SOA (negative TTL 10 s)", () => {
    const p = decoded(r.handle(query({ type: "A", name: "nosuch.tail.example" })));
    expect(p.rcode).toBe("NXDOMAIN");
    expect(p.flag_aa).toBe(true);
    const soa = p.authorities?.[0];
    expect(soa?.type).toBe("SOA");
    expect(soa?.name).toBe("tail.example");
    expect(soa?.ttl).toBe(10);
    expect((soa?.data as { minimum: number }).minimum).toBe(10);
  });

  it("forwards names outside the tailnet domain and unknown single labels", () => {
    expect(r.handle(query({ type: "A", name: "Example.COM." }))).toEqual({ kind: "forward", name: "example.com" });
    expect(r.handle(query({ type: "A", name: "gamma" }))).toEqual({ kind: "forward", name: "gamma" });
    expect(r.handle(query({ type: "PTR", name: "1.0.0.10.in-addr.arpa" }))).toEqual({ kind: "forward", name: "1.0.0.10.in-addr.arpa" });
    expect(r.handle(query({ type: "PTR", name: "1.0.0.100.in-addr.arpa" }))).toEqual({ kind: "forward", name: "1.0.0.100.in-addr.arpa" });
  });

  it("setZone changes the answers (a rename)", () => {
    const r2 = new Resolver(zone);
    r2.setZone(Zone.build({ domain: "tail.example", hosts: [{ name: "gamma.tail.example.", addresses: ["100.64.0.2/32"] }] }));
    expect(decoded(r2.handle(query({ type: "A", name: "beta.tail.example" }))).rcode).toBe("NXDOMAIN");
    expect(decoded(r2.handle(query({ type: "A", name: "gamma" }))).answers?.[0]?.data).toBe("100.64.0.2");
  });
});

describe("MagicDNS resolver: PTR", () => {
  it("PTR of a tailnet IPv4 address → the FQDN", () => {
    const p = decoded(r.handle(query({ type: "PTR", name: "2.0.64.100.in-addr.arpa" })));
    expect(p.rcode).toBe("NOERROR");
    expect(p.answers?.map((a) => a.data)).toEqual(["beta.tail.example"]);
  });

  it("PTR of a tailnet IPv6 address → the FQDN", () => {
    const p = decoded(r.handle(query({ type: "PTR", name: ip6Arpa("fd7a115ca1e000000000000000000002") })));
    expect(p.answers?.map((a) => a.data)).toEqual(["beta.tail.example"]);
  });

  it("unknown address in the tailnet reverse zones → NXDOMAIN (authoritative)", () => {
    expect(decoded(r.handle(query({ type: "PTR", name: "9.0.64.100.in-addr.arpa" }))).rcode).toBe("NXDOMAIN");
    expect(decoded(r.handle(query({ type: "PTR", name: "9.127.100.in-addr.arpa" }))).rcode).toBe("NXDOMAIN");
    const v6 = ip6Arpa("fd7a115ca1e000000000000000000009");
    expect(decoded(r.handle(query({ type: "PTR", name: v6 }))).rcode).toBe("NXDOMAIN");
  });

  it("PTR of 100.100.100.100 → the resolver's own name", () => {
    const p = decoded(r.handle(query({ type: "PTR", name: "100.100.100.100.in-addr.arpa" })));
    expect(p.answers?.[0]?.data).toBe(QUAD100_PTR.slice(0, -1));
  });
});

describe("MagicDNS resolver: EDNS0 and truncation", () => {
  it("keeps EDNS0: OPT in the answer, DO bit echoed", () => {
    const q = query({ type: "A", name: "beta" }, { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK } as never] });
    const p = decoded(r.handle(q));
    const opt = p.additionals?.find((a) => a.type === "OPT") as { udpPayloadSize: number; flag_do: boolean } | undefined;
    expect(opt?.udpPayloadSize).toBe(MAX_UDP_PAYLOAD);
    expect(opt?.flag_do).toBe(true);
    expect(p.answers?.[0]?.data).toBe("100.64.0.2");
  });

  it("no OPT in the query → none in the answer", () => {
    expect(decoded(r.handle(query({ type: "A", name: "beta" }))).additionals).toEqual([]);
  });

  it("EDNS version 1 → BADVERS (extended rcode 1)", () => {
    const q = query({ type: "A", name: "beta" }, { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232, ednsVersion: 1 } as never] });
    const p = decoded(r.handle(q));
    expect((p.additionals?.[0] as { extendedRcode: number }).extendedRcode).toBe(RCODE.BADVERS >> 4);
  });

  it("truncates (TC) an answer bigger than 512 bytes without EDNS", () => {
    const many = Array.from({ length: 30 }, (_, i) => `fd7a:115c:a1e0::${(i + 1).toString(16)}/128`);
    const big = new Resolver(Zone.build({ domain: "tail.example", hosts: [{ name: "big.tail.example", addresses: many }] }));
    const p = decoded(big.handle(query({ type: "AAAA", name: "big" })));
    expect(p.flag_tc).toBe(true);
    expect(p.answers).toEqual([]);
    const withEdns = decoded(big.handle(query({ type: "AAAA", name: "big" }, { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096 } as never] })));
    expect(withEdns.flag_tc).toBe(false);
    expect(withEdns.answers?.length).toBe(30);
  });
});

describe("MagicDNS resolver: hostile input", () => {
  it("drops short messages and responses, FORMERRs garbage, NOTIMPs other opcodes", () => {
    expect(r.handle(new Uint8Array(5))).toEqual({ kind: "drop", reason: "short" });
    const resp = query({ type: "A", name: "beta" });
    resp[2] |= 0x80;
    expect(r.handle(resp)).toEqual({ kind: "drop", reason: "not_query" });
    expect(r.handle(new Uint8Array(5000))).toEqual({ kind: "drop", reason: "too_big" });
    const garbage = new Uint8Array([0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c]); // self-pointing name
    const g = decoded(r.handle(garbage));
    expect(g.id).toBe(0xabcd);
    expect(g.rcode).toBe("FORMERR");
    const notify = query({ type: "A", name: "beta" });
    notify[2] = (notify[2]! & 0x87) | (4 << 3);
    expect(decoded(r.handle(notify)).rcode).toBe("NOTIMP");
  });

  it("two questions → FORMERR", () => {
    const q = dnsPacket.encode({ type: "query", id: 1, questions: [{ type: "A", name: "beta" }, { type: "A", name: "alpha" }] });
    expect(decoded(r.handle(q)).rcode).toBe("FORMERR");
  });

  it("a class other than IN for a tailnet name → REFUSED", () => {
    expect(decoded(r.handle(query({ type: "A", name: "beta", class: "CH" }))).rcode).toBe("REFUSED");
  });

  it("servfail() echoes the question, header-only for garbage, null for responses", () => {
    const sf = servfail(query({ type: "A", name: "example.com" }))!;
    const p = dnsPacket.decode(Buffer.from(sf)) as DecodedPacket & { rcode: string };
    expect(p.rcode).toBe("SERVFAIL");
    expect(p.questions?.[0]?.name).toBe("example.com");
    expect(servfail(new Uint8Array([1, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0xff]))?.length).toBe(12);
    const resp = query({ type: "A", name: "x" });
    resp[2] |= 0x80;
    expect(servfail(resp)).toBeNull();
  });

  it("fuzz: random bytes never throw; answers are decodable and keep the id", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => {
        const d = r.handle(bytes);
        if (d.kind === "answer") {
          const p = dnsPacket.decode(Buffer.from(d.response));
          expect(p.id).toBe((bytes[0]! << 8) | bytes[1]!);
          expect(p.type).toBe("response");
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("fuzz: mutated valid queries never throw; answers are decodable", () => {
    const seeds = [
      query({ type: "A", name: "beta.tail.example" }, { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096 } as never] }),
      query({ type: "PTR", name: "2.0.64.100.in-addr.arpa" }),
      query({ type: "AAAA", name: "nosuch.tail.example" }),
    ];
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(64), (seed, flips, cut) => {
        const b = seed.slice(0, Math.max(0, seed.length - (cut % 8 === 0 ? cut : 0)));
        for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
        const d = r.handle(b);
        if (d.kind === "answer") expect(() => dnsPacket.decode(Buffer.from(d.response))).not.toThrow();
      }),
      { numRuns: 5000 },
    );
  });

  it("huge names (many labels, 255 octets) are answered or refused, never thrown", () => {
    const long = Array.from({ length: 127 }, () => "a").join(".");
    const d = r.handle(query({ type: "A", name: long + ".tail.example" }));
    expect(["answer", "forward"]).toContain(d.kind);
  });
});

describe("MagicDNS resolver: hostile names (acceptance 4)", () => {
  const header = (id: number) => [id >> 8, id & 255, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  const tail = [0, 1, 0, 1]; // QTYPE A, QCLASS IN

  it("a compression pointer loop in the question → FORMERR, never a hang or a throw", () => {
    // The question name is a pointer to itself (offset 12), and a two-pointer cycle.
    for (const name of [[0xc0, 12], [0x01, 0x61, 0xc0, 14, 0xc0, 12]]) {
      const d = r.handle(new Uint8Array([...header(0x4242), ...name, ...tail]));
      expect(d.kind).toBe("answer");
      const p = decoded(d);
      expect(p.id).toBe(0x4242);
      expect(p.rcode).toBe("FORMERR");
    }
  });

  it("a 64-byte label (over RFC 1035's 63) → FORMERR", () => {
    const d = r.handle(new Uint8Array([...header(7), 64, ...new Array(64).fill(0x61), 0, ...tail]));
    expect(decoded(d).rcode).toBe("FORMERR");
  });

  it("a name of 255+ octets on the wire is answered (FORMERR/NXDOMAIN) or forwarded, never thrown", () => {
    for (const labels of [4, 5, 8]) {
      const name: number[] = [];
      for (let i = 0; i < labels; i++) name.push(63, ...new Array(63).fill(0x62));
      const d = r.handle(new Uint8Array([...header(9), ...name, 0, ...tail]));
      expect(["answer", "forward"]).toContain(d.kind);
      if (d.kind === "answer") expect(decoded(d).id).toBe(9);
    }
  });

  it("fuzz: random names (labels up to 70 bytes, pointers anywhere) over UDP and TCP never throw", () => {
    const label = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 70 }).map((b) => [b.length, ...b]),
      fc.tuple(fc.integer({ min: 0xc0, max: 0xff }), fc.nat(255)).map(([a, b]) => [a, b]),
    );
    fc.assert(
      fc.property(fc.array(label, { maxLength: 8 }), fc.constantFrom<"udp" | "tcp">("udp", "tcp"), (ls, t) => {
        const d = r.handle(new Uint8Array([...header(3), ...ls.flat(), 0, ...tail]), t);
        if (d.kind === "answer") expect(dnsPacket.decode(Buffer.from(d.response)).id).toBe(3);
      }),
      { numRuns: 3000 },
    );
  });
});
