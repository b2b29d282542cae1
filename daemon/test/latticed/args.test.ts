import { describe, expect, it } from "vitest";
import { DEFAULTS, parseLatticedArgs } from "../../src/latticed/args.js";

function parse(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const r = parseLatticedArgs(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { r, out: out.join(""), err: err.join("") };
}

describe("latticed command line", () => {
  it("defaults: /var/lib/lattice, /var/run/lattice/latticed.sock, 41641, lattice0, verbose 0, no operator", () => {
    expect(parse().r).toEqual({ kind: "run", opts: { state: "/var/lib/lattice", socket: "/var/run/lattice/latticed.sock", port: 41641, tun: "lattice0", verbose: 0, operator: null, resolvConf: "/etc/resolv.conf" } });
    expect(DEFAULTS.port).toBe(41641);
  });

  it("takes every flag", () => {
    expect(parse("--state", "/s", "--socket", "/r/x.sock", "--port", "0", "--tun", "lt1", "--verbose", "2", "--operator", "alice").r).toEqual({
      kind: "run",
      opts: { state: "/s", socket: "/r/x.sock", port: 0, tun: "lt1", verbose: 2, operator: "alice", resolvConf: "/etc/resolv.conf" },
    });
  });

  it("bad values exit 2 naming the flag and the value", () => {
    for (const [args, msg] of [
      [["--port", "70000"], /--port: a UDP port 0\.\.65535 \(got "70000"\)/],
      [["--verbose", "x"], /--verbose: 0, 1 or 2 \(got "x"\)/],
      [["--tun", "a/b"], /--tun: interface name "a\/b"/],
      [["--operator", "bad user"], /--operator: a user name or uid/],
      [["--resolv-conf", "etc/resolv.conf"], /--resolv-conf: an absolute path/],
      [["--nope"], /unknown option/],
      [["extra"], /unexpected argument "extra"/],
    ] as const) {
      const { r, err } = parse(...args);
      expect(r).toEqual({ kind: "exit", code: 2 });
      expect(err).toMatch(msg);
    }
  });

  it("--help and --version exit 0", () => {
    expect(parse("--help").r).toEqual({ kind: "exit", code: 0 });
    const v = parse("--version");
    expect(v.r).toEqual({ kind: "exit", code: 0 });
    expect(v.out).toMatch(/^latticed v\d/);
  });
});
