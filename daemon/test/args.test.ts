import { describe, expect, it } from "vitest";
import { checkIfname, parseArgs } from "../src/wg/args.js";

function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = "";
  let err = "";
  const r = parseArgs(argv, { out: (s) => (out += s), err: (s) => (err += s) }, env);
  return { r, out, err };
}

describe("lattice-wg arguments", () => {
  it("takes IFNAME and daemonizes by default", () => {
    expect(run(["wg0"]).r).toEqual({ kind: "run", ifname: "wg0", foreground: false });
  });
  it("accepts -f and --foreground, before or after the name", () => {
    expect(run(["-f", "wg0"]).r).toEqual({ kind: "run", ifname: "wg0", foreground: true });
    expect(run(["--foreground", "wg1"]).r).toEqual({ kind: "run", ifname: "wg1", foreground: true });
    expect(run(["wg2", "-f"]).r).toEqual({ kind: "run", ifname: "wg2", foreground: true });
  });
  it("honours WG_PROCESS_FOREGROUND=1 like wireguard-go", () => {
    expect(run(["wg0"], { WG_PROCESS_FOREGROUND: "1" }).r).toEqual({ kind: "run", ifname: "wg0", foreground: true });
  });
  it("prints help and version with exit 0", () => {
    const h = run(["--help"]);
    expect(h.r).toEqual({ kind: "exit", code: 0 });
    expect(h.out).toContain("Usage: lattice-wg [-f|--foreground] IFNAME");
    expect(h.out).toContain("LOG_LEVEL");
    const v = run(["--version"]);
    expect(v.r).toEqual({ kind: "exit", code: 0 });
    expect(v.out).toMatch(/^lattice-wg v\d+\.\d+\.\d+/);
  });
  it("rejects unknown flags, missing and extra operands with exit 2 and a message", () => {
    const a = run(["--bogus", "wg0"]);
    expect(a.r).toEqual({ kind: "exit", code: 2 });
    expect(a.err).toContain("unknown option '--bogus'");
    const b = run([]);
    expect(b.r).toEqual({ kind: "exit", code: 2 });
    expect(b.err).toContain("missing required argument 'IFNAME'");
    const c = run(["a", "b"]);
    expect(c.r).toEqual({ kind: "exit", code: 2 });
    expect(c.err).toContain("too many arguments");
  });
  it("rejects interface names the kernel would refuse", () => {
    const r = run(["this-name-is-too-long"]);
    expect(r.r).toEqual({ kind: "exit", code: 2 });
    expect(r.err).toContain("longer than 15 bytes");
    expect(checkIfname("a/b")).toContain("'/'");
    expect(checkIfname("wg0")).toBeNull();
    expect(checkIfname("..")).not.toBeNull();
  });
});
