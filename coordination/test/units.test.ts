/** Unit tests: address allocation, MagicDNS names, durations, config, passwords, secrets. */
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allocateIPv4, highestIPv4, ipv4ToNumber, ipv6For, isAssignableIPv4 } from "../src/services/addresses.js";
import { sanitizeHostname, uniqueName, validateGivenName } from "../src/services/names.js";
import { parseDuration } from "../src/duration.js";
import { parseListen, readConfigFile, readEnv, resolveConfig } from "../src/config.js";
import { hashPassword, verifyPassword } from "../src/services/password.js";
import { makeSecret, secretMatches, splitSecret } from "../src/services/secrets.js";
import { randomBytes } from "node:crypto";
import { prettyLine } from "../src/log-format.js";

describe("addresses", () => {
  it("allocates from 100.64.0.0/10 after the last address handed out, so a freed address is not reused right away", () => {
    expect(allocateIPv4(new Set())).toBe("100.64.0.1");
    expect(allocateIPv4(new Set(["100.64.0.1", "100.64.0.2"]))).toBe("100.64.0.3");
    // 100.64.0.1 was freed; the next node gets a never-used address, not the freed one.
    expect(allocateIPv4(new Set(["100.64.0.2"]), "100.64.0.2")).toBe("100.64.0.3");
    expect(allocateIPv4(new Set(), "100.64.0.254")).toBe("100.64.1.1");
    expect(highestIPv4(["100.64.0.9", "100.64.1.2", "100.64.0.200"])).toBe("100.64.1.2");
  });
  it("wraps around at the end of the range and skips addresses in use", () => {
    expect(allocateIPv4(new Set(["100.64.0.1"]), "100.127.255.254")).toBe("100.64.0.2");
  });
  it("never hands out 100.100.100.100 or 100.115.92.0/23", () => {
    expect(isAssignableIPv4(ipv4ToNumber("100.100.100.100"))).toBe(false);
    expect(isAssignableIPv4(ipv4ToNumber("100.115.92.0"))).toBe(false);
    expect(isAssignableIPv4(ipv4ToNumber("100.115.93.255"))).toBe(false);
    expect(isAssignableIPv4(ipv4ToNumber("100.115.94.1"))).toBe(true);
    expect(isAssignableIPv4(ipv4ToNumber("100.128.0.1"))).toBe(false);
    expect(isAssignableIPv4(ipv4ToNumber("100.63.255.254"))).toBe(false);
  });
  it("pairs each IPv4 with a stable IPv6 in fd7a:115c:a1e0::/48", () => {
    expect(ipv6For("100.64.0.1")).toBe("fd7a:115c:a1e0::6440:1");
    expect(ipv6For("100.127.255.254")).toBe("fd7a:115c:a1e0::647f:fffe");
  });
});

describe("names", () => {
  it("sanitizes hostnames into DNS labels", () => {
    expect(sanitizeHostname("My Laptop.local")).toBe("my-laptop");
    expect(sanitizeHostname("___")).toBe("node");
    expect(sanitizeHostname("a".repeat(80)).length).toBe(63);
  });
  it("makes names unique with -1, -2...", () => {
    expect(uniqueName("web", new Set())).toBe("web");
    expect(uniqueName("web", new Set(["web", "web-1"]))).toBe("web-2");
  });
  it("rejects bad admin names", () => {
    expect(() => validateGivenName("-x")).toThrow(/DNS label/);
    expect(validateGivenName("ok-1")).toBe("ok-1");
  });
});

describe("durations and config", () => {
  it("parses durations", () => {
    expect(parseDuration("24h")).toBe(86_400_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("90d")).toBe(90 * 86_400_000);
    expect(() => parseDuration("24 hours", "expiry")).toThrow(/expiry: "24 hours" is not a duration/);
  });
  it("resolves defaults, env and flags (flags win)", () => {
    const c = resolveConfig({}, readEnv({ LATTICE_CONTROL_LISTEN: "127.0.0.1:9000", LATTICE_CONTROL_DB: "/tmp/x.db" }), { db: "/tmp/y.db" });
    expect(c.listenPort).toBe(9000);
    expect(c.serverUrl).toBe("http://127.0.0.1:9000");
    expect(c.db).toBe("/tmp/y.db");
    expect(c.socket).toBe("/var/run/lattice/control.sock");
    const d = resolveConfig({});
    expect(`${d.listenHost}:${d.listenPort}`).toBe("0.0.0.0:8080");
    expect(d.db).toBe("./lattice.db");
    expect(() => parseListen("nope")).toThrow(/listen: "nope" is not ADDR:PORT/);
    expect(parseListen("[::1]:80")).toEqual({ host: "::1", port: 80 });
  });
  it("rejects unknown config-file keys by name", () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-cfg-"));
    const f = join(dir, "c.json");
    writeFileSync(f, JSON.stringify({ listen: "127.0.0.1:1", databse: "x" }));
    expect(() => readConfigFile(f)).toThrow(/unknown field "databse"/);
    writeFileSync(f, JSON.stringify({ tlsSelfSigned: "yes" }));
    expect(() => readConfigFile(f)).toThrow(/config\.tlsSelfSigned/);
    writeFileSync(f, JSON.stringify({ listen: "127.0.0.1:1", db: "/tmp/z.db" }));
    expect(readConfigFile(f)).toEqual({ listen: "127.0.0.1:1", db: "/tmp/z.db" });
  });
  it("rejects half a TLS configuration", () => {
    expect(() => resolveConfig({ tlsCert: "a" })).toThrow(/tls-cert and --tls-key/);
  });
});

describe("secrets", () => {
  it("scrypt password hashes verify only the right password", async () => {
    const h = await hashPassword("hunter22", randomBytes(16));
    expect(h).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword("hunter22", h)).toBe(true);
    expect(await verifyPassword("hunter23", h)).toBe(false);
    expect(await verifyPassword("x", "garbage")).toBe(false);
  });
  it("bearer secrets are stored as SHA-256 and found by prefix", () => {
    const s = makeSecret("lkey", randomBytes);
    const parts = splitSecret("lkey", s.full)!;
    expect(parts.prefix).toBe(s.prefix);
    expect(s.full).not.toContain(s.hash);
    expect(secretMatches(parts.secret, s.hash)).toBe(true);
    expect(secretMatches(parts.secret + "x", s.hash)).toBe(false);
    expect(splitSecret("lkey", "lapi-" + s.full.slice(5))).toBeNull();
  });
});

describe("pretty log lines for terminals (issue 11)", () => {
  it("formats level, time, message and nested fields; leaves non-JSON alone", () => {
    const line = JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 31, 12, 0, 1), pid: 1, hostname: "h", msg: "registration refused: auth_key_invalid", registration: { hostname: "web 1", code: "auth_key_invalid" } });
    expect(prettyLine(line)).toBe(`12:00:01 WARN  registration refused: auth_key_invalid  registration.hostname="web 1" registration.code=auth_key_invalid\n`);
    expect(prettyLine("plain text\n")).toBe("plain text\n");
  });
});
