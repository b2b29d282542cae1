import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { isIP } from "node:net";
import { formatIp, formatIpv6, formatPrefix, parseIp, parseIpv4, parseIpv6, parsePrefix } from "../src/index.js";

describe("ipaddr (Go netip rules)", () => {
  test("IPv4 strict dotted quads", () => {
    expect(Array.from(parseIpv4("192.168.4.20")!)).toEqual([192, 168, 4, 20]);
    expect(Array.from(parseIpv4("0.0.0.0")!)).toEqual([0, 0, 0, 0]);
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", "1.2.3.04", "1..2.3", "1.2.3.4 ", "a.b.c.d", "1.2.3.-4", "1.2.3.4/8"]) {
      expect(parseIpv4(bad), bad).toBeNull();
    }
  });

  test("IPv6 forms, zones, embedded IPv4", () => {
    expect(formatIp(parseIpv6("::")!.bytes)).toBe("::");
    expect(formatIp(parseIpv6("::1")!.bytes)).toBe("::1");
    expect(formatIp(parseIpv6("2001:DB8:0:0:1:0:0:1")!.bytes)).toBe("2001:db8::1:0:0:1");
    expect(formatIp(parseIpv6("2001:db8::")!.bytes)).toBe("2001:db8::");
    expect(formatIp(parseIpv6("1:2:3:4:5:6:7::")!.bytes)).toBe("1:2:3:4:5:6:7:0");
    expect(formatIp(parseIpv6("::ffff:1.2.3.4")!.bytes)).toBe("::ffff:1.2.3.4");
    expect(formatIp(parseIpv6("64:ff9b::1.2.3.4")!.bytes)).toBe("64:ff9b::102:304");
    expect(formatIp(parseIpv6("0:0:0:0:0:0:1.2.3.4")!.bytes)).toBe("::102:304");
    expect(parseIpv6("fe80::1%eth0", true)).toMatchObject({ zone: "eth0" });
    for (const bad of ["", ":", ":::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "1::2::3", "12345::", "::1:", "1:2", "fe80::1%eth0", "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "g::"]) {
      expect(parseIpv6(bad), bad).toBeNull();
    }
    expect(parseIpv6("fe80::1%", true)).toBeNull();
    expect(parseIpv6("1:2:3:4:5:6:7:8::", true)).toBeNull();
    // "::" must stand for at least one group.
    expect(parseIpv6("1:2:3:4::5:6:7:8")).toBeNull();
  });

  test("RFC 5952: the first longest zero run is compressed, single zero groups are not", () => {
    expect(formatIp(parseIpv6("1:0:0:2:0:0:0:3")!.bytes)).toBe("1:0:0:2::3");
    expect(formatIp(parseIpv6("1:0:0:2:0:0:3:4")!.bytes)).toBe("1::2:0:0:3:4");
    expect(formatIp(parseIpv6("1:0:2:3:4:5:6:7")!.bytes)).toBe("1:0:2:3:4:5:6:7");
  });

  test("prefixes are masked and validated", () => {
    const text = (t: string): string | undefined => {
      const p = parsePrefix(t);
      return p === null ? undefined : formatPrefix(p);
    };
    expect(text("10.0.0.1/8")).toBe("10.0.0.0/8");
    expect(parsePrefix("10.0.0.1/8")).toMatchObject({ family: 4, bits: 8 });
    expect(text("2001:db8::1/32")).toBe("2001:db8::/32");
    expect(text("0.0.0.0/0")).toBe("0.0.0.0/0");
    expect(text("::/0")).toBe("::/0");
    expect(text("10.1.2.3/31")).toBe("10.1.2.2/31");
    for (const bad of ["10.0.0.0", "10.0.0.0/33", "::/129", "10.0.0.0/08", "10.0.0.0/+8", "10.0.0.0/", "fe80::1%eth0/64", "/8", "host/8"]) {
      expect(parsePrefix(bad), bad).toBeNull();
    }
  });

  test("property: formatting any 16 bytes round-trips and agrees with node:net", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (b, sparse) => {
        if (sparse) for (let i = 0; i < 16; i++) if (b[i] & 1) b[i] = 0; // more zero runs
        const text = formatIpv6(b);
        expect(isIP(text)).toBe(6);
        expect(Array.from(parseIpv6(text)!.bytes)).toEqual(Array.from(b));
      }),
      { numRuns: 2000 },
    );
  });

  test("property: parseIp accepts only what node:net accepts (no zones)", () => {
    const chars = fc.constantFrom(..."0123456789abcdefABCDEF:.%/ -x".split(""));
    fc.assert(
      fc.property(fc.string({ unit: chars, maxLength: 45 }), (s) => {
        const ours = parseIp(s);
        if (ours !== null) expect(isIP(s)).toBe(ours.family);
      }),
      { numRuns: 5000 },
    );
  });
});
