import { describe, expect, it } from "vitest";
import { IPSet, formatAddr, formatPrefix, parseAddr, parsePrefix, rangeToPrefixes } from "../src/ip.js";

describe("ip", () => {
  it("parses and prints addresses canonically", () => {
    expect(formatAddr(true, parseAddr("fd7a:115c:a1e0:0:0:0:d537:2180")!.n)).toBe("fd7a:115c:a1e0::d537:2180");
    expect(formatAddr(true, parseAddr("::")!.n)).toBe("::");
    expect(formatAddr(true, parseAddr("1:0:0:1:0:0:0:1")!.n)).toBe("1:0:0:1::1");
    expect(formatAddr(false, parseAddr("100.64.0.1")!.n)).toBe("100.64.0.1");
    expect(parseAddr("100.64.0.256")).toBeNull();
    expect(parseAddr("01.2.3.4")).toBeNull();
    expect(parseAddr("1::2::3")).toBeNull();
  });

  it("masks host bits of prefixes and prints hosts bare", () => {
    const p = parsePrefix("10.33.1.7/16")!;
    expect(formatPrefix(p)).toBe("10.33.0.0/16");
    expect(formatPrefix(parsePrefix("100.64.0.1/32")!)).toBe("100.64.0.1");
    expect(parsePrefix("10.0.0.0/33")).toBeNull();
  });

  it("merges sets and splits ranges into minimal prefixes", () => {
    const s = new IPSet([parsePrefix("10.0.0.0/8")!, parsePrefix("10.33.0.0/16")!, parsePrefix("100.64.0.1")!]);
    expect(s.strings()).toEqual(["10.0.0.0/8", "100.64.0.1"]);
    const r = rangeToPrefixes({ v6: false, lo: parseAddr("10.0.0.1")!.n, hi: parseAddr("10.0.0.6")!.n }).map(formatPrefix);
    expect(r).toEqual(["10.0.0.1", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6"]);
  });
});
