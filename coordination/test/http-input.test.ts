/**
 * Unit tests of the one-place input handling of the web/REST listeners: the redirect
 * validator (issue 6 A3), the decoding path (A11), the login throttle (A13) and the
 * listener limit settings (A2/A7).
 */
import { describe, expect, it } from "vitest";
import type { IncomingMessage } from "node:http";
import { safeRedirectPath } from "../src/http/redirect.js";
import { decodePathParam, parseCookies, requestUrl } from "../src/http/decode.js";
import { LoginThrottle } from "../src/http/login-throttle.js";
import { DEFAULT_LISTENER_LIMITS, resolveListenerLimits, sourceKey } from "../src/http/limits.js";
import { ValidationError } from "../src/errors.js";
import { resolveConfig, readEnv } from "../src/config.js";

const ORIGIN = "https://control.example.com";

describe("safeRedirectPath: post-login targets stay on the server's origin", () => {
  const hostile = [
    "/\t/evil.example/x", // the reported case (?next=/%09/evil.example/x)
    "/\n/evil.example",
    "/\r/evil.example",
    "\t//evil.example",
    " /evil",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/.//evil.example",
    "/./\\evil.example",
    "https://evil.example/x",
    "http:evil.example",
    "javascript:alert(1)",
    "evil.example",
    "/\u3000/evil.example",
    "/\u0000/evil",
    "",
    null,
    undefined,
  ];
  for (const next of hostile) {
    it(`refuses ${JSON.stringify(next)}`, () => {
      const out = safeRedirectPath(next, ORIGIN);
      expect(out).toBe("/");
    });
  }

  it("every answer resolves (as a browser would) to the server's own origin", () => {
    const tries = [...hostile.filter((x): x is string => typeof x === "string"), "/%2F%2Fevil.example", "/%5Cevil.example", "/a/../..//evil.example", "/register/abc?x=1#y"];
    for (const next of tries) {
      const out = safeRedirectPath(next, ORIGIN);
      expect(out.startsWith("/") && !out.startsWith("//"), `${JSON.stringify(next)} → ${out}`).toBe(true);
      expect(new URL(out, ORIGIN).origin).toBe(ORIGIN);
    }
  });

  it("keeps same-origin paths with query and fragment", () => {
    expect(safeRedirectPath("/register/AbC_12345678", ORIGIN)).toBe("/register/AbC_12345678");
    expect(safeRedirectPath("/a/b?x=1&y=%2F#frag", ORIGIN)).toBe("/a/b?x=1&y=%2F#frag");
    expect(safeRedirectPath("/%2F%2Fevil.example", ORIGIN)).toBe("/%2F%2Fevil.example");
  });
});

describe("decoding: bad escapes are 400s or ignored, never thrown as URIError", () => {
  it("parseCookies keeps an undecodable value as sent and decodes the rest", () => {
    const c = parseCookies("x=%E0%A4%A; lattice_session=abc.def; y=%zz; z=a%20b; w=%; q=\"quoted\"");
    expect(c.get("x")).toBe("%E0%A4%A");
    expect(c.get("lattice_session")).toBe("abc.def");
    expect(c.get("y")).toBe("%zz");
    expect(c.get("z")).toBe("a b");
    expect(c.get("w")).toBe("%");
    expect(c.get("q")).toBe("quoted");
    expect(parseCookies("a=1; a=2").get("a")).toBe("1");
    expect(parseCookies(undefined).size).toBe(0);
  });

  it("decodePathParam throws ValidationError naming the parameter and position", () => {
    expect(decodePathParam("al%20ice", "#1")).toBe("al ice");
    for (const [raw, pos] of [["%E0%A4%A", 1], ["ab%zz", 3], ["ok%", 3], ["x%C3%28", 2]] as const) {
      let err: unknown;
      try {
        decodePathParam(raw, "#1 of /api/v1/users/x");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).status).toBe(400);
      expect((err as ValidationError).code).toBe("bad_path_parameter");
      expect((err as Error).message).toContain(`#1 of /api/v1/users/x ${JSON.stringify(raw)}`);
      expect((err as Error).message).toContain(`position ${pos}`);
    }
  });

  it("requestUrl takes the path as sent and refuses what is not a path or http URL with 400", () => {
    const req = (url: string) => ({ url }) as IncomingMessage;
    expect(requestUrl(req("//x/y?z=1")).pathname).toBe("//x/y");
    expect(requestUrl(req("/login?next=%E0")).searchParams.get("next")).toBe("\ufffd");
    expect(requestUrl(req("http://host:1/a")).pathname).toBe("/a");
    for (const bad of ["*", "http://[", "x", "", "/" + "a".repeat(9000)]) {
      expect(() => requestUrl(req(bad))).toThrow(ValidationError);
    }
  });
});

describe("LoginThrottle: per (account, address) with backoff, gentler per address", () => {
  const setup = (opts = {}) => {
    let t = 1_000_000;
    const th = new LoginThrottle(() => t, { freeFailures: 3, baseDelayMs: 1000, maxDelayMs: 8000, perSourceFailures: 20, perSourceWindowMs: 60_000, ...opts });
    return { th, advance: (ms: number) => (t += ms) };
  };

  it("one account's failures do not lock out other accounts behind the same address", () => {
    const { th } = setup();
    for (let i = 0; i < 3; i++) th.fail("alice", "192.0.2.1");
    expect(th.check("alice", "192.0.2.1")).toMatchObject({ allowed: false, scope: "account", retryAfterMs: 1000 });
    expect(th.check("ALICE ", "192.0.2.1").allowed).toBe(false);
    expect(th.check("bob", "192.0.2.1").allowed).toBe(true);
    expect(th.check("alice", "192.0.2.2").allowed).toBe(true);
  });

  it("backs off exponentially up to the maximum; a success clears the pair", () => {
    const { th, advance } = setup();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      th.fail("alice", "192.0.2.1");
      const v = th.check("alice", "192.0.2.1");
      delays.push(v.allowed ? 0 : v.retryAfterMs);
      if (!v.allowed) advance(v.retryAfterMs);
    }
    expect(delays).toEqual([0, 0, 1000, 2000, 4000, 8000, 8000, 8000]);
    th.succeed("alice", "192.0.2.1");
    th.fail("alice", "192.0.2.1");
    expect(th.check("alice", "192.0.2.1").allowed).toBe(true);
  });

  it("caps failures per address across accounts, then lets the window pass", () => {
    const { th, advance } = setup();
    for (let i = 0; i < 20; i++) th.fail(`user${i}`, "2001:db8:1:2::5");
    // Same /64, other host: the same source.
    expect(th.check("newcomer", "2001:db8:1:2::99")).toMatchObject({ allowed: false, scope: "source" });
    expect(th.check("newcomer", "2001:db8:1:3::1").allowed).toBe(true);
    advance(60_000);
    expect(th.check("newcomer", "2001:db8:1:2::99").allowed).toBe(true);
  });

  it("bounds memory: the stalest keys are forgotten first", () => {
    const { th } = setup({ maxEntries: 10, freeFailures: 1 });
    th.fail("victim", "192.0.2.1");
    expect(th.check("victim", "192.0.2.1").allowed).toBe(false);
    for (let i = 0; i < 10; i++) th.fail("x", `198.51.100.${i}`);
    expect(th.check("victim", "192.0.2.1").allowed).toBe(true);
  });
});

describe("listener limit settings", () => {
  it("defaults, env overrides, and errors naming the key", () => {
    expect(resolveConfig({}).limits).toEqual(DEFAULT_LISTENER_LIMITS);
    const env = readEnv({ LATTICE_CONTROL_HEADER_TIMEOUT: "2s", LATTICE_CONTROL_BODY_TIMEOUT: "250ms", LATTICE_CONTROL_MAX_CONNECTIONS_PER_ADDRESS: "7" });
    expect(resolveConfig(env).limits).toMatchObject({ headerTimeoutMs: 2000, bodyTimeoutMs: 250, maxConnectionsPerAddress: 7 });
    expect(resolveConfig({ maxStreamsPerConnection: 4 }).limits.maxStreamsPerConnection).toBe(4);
    expect(() => resolveListenerLimits({ maxConnectionsPerAddress: "lots" })).toThrow(/maxConnectionsPerAddress: "lots"/);
    expect(() => resolveListenerLimits({ maxStreamsPerConnection: 0 })).toThrow(/maxStreamsPerConnection/);
    expect(() => resolveListenerLimits({ bodyTimeout: "0s" })).toThrow(/bodyTimeout/);
    expect(() => resolveListenerLimits({ headerTimeout: "2m" })).toThrow(/headerTimeout \(2m\) must not exceed requestTimeout/);
  });

  it("sourceKey groups IPv6 by /64 and unwraps IPv4-mapped addresses", () => {
    expect(sourceKey("192.0.2.7")).toBe("192.0.2.7");
    expect(sourceKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(sourceKey("2001:db8:0:1:aaaa::1")).toBe("2001:db8:0:1::/64");
    expect(sourceKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(sourceKey("::1")).toBe("0:0:0:0::/64");
    expect(sourceKey(undefined)).toBe("local");
  });
});
