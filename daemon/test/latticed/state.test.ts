import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { StateDir, STATE_FILES } from "../../src/latticed/state.js";
import { LatticedError } from "../../src/latticed/errors.js";

const random = (n: number) => new Uint8Array(randomBytes(n));
const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "latticed-state-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("StateDir", () => {
  it("creates a missing state directory with mode 0700", () => {
    const d = path.join(tmp(), "nested", "lattice");
    StateDir.open(d, random);
    expect(fs.statSync(d).mode & 0o777).toBe(0o700);
  });

  it("refuses a state directory readable by group or others, naming path and mode", () => {
    const d = tmp();
    fs.chmodSync(d, 0o755);
    expect(() => StateDir.open(d, random)).toThrowError(/has mode 0755/);
    try {
      StateDir.open(d, random);
    } catch (e) {
      expect((e as LatticedError).code).toBe("state_insecure");
    }
  });

  it("writes files 0600 and leaves no temp file behind", () => {
    const d = tmp();
    fs.chmodSync(d, 0o700);
    const s = StateDir.open(d, random);
    s.writeJson(STATE_FILES.prefs, { a: 1 });
    s.writeJson(STATE_FILES.prefs, { a: 2 });
    expect(fs.statSync(path.join(d, "prefs.json")).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(d)).toEqual(["prefs.json"]);
    expect(s.readJson(STATE_FILES.prefs)).toEqual({ a: 2 });
  });

  it("replaces a file atomically: a reader sees the old or the new content, never a mix", () => {
    const d = tmp();
    fs.chmodSync(d, 0o700);
    const s = StateDir.open(d, random);
    const big = (c: string) => JSON.stringify({ v: c.repeat(200_000) });
    s.write("netmap.json", big("a"));
    // Hold the old inode open: rename swaps the name, so the old content stays whole.
    const fd = fs.openSync(path.join(d, "netmap.json"), "r");
    s.write("netmap.json", big("b"));
    expect(fs.readFileSync(fd, "utf8")).toBe(big("a"));
    fs.closeSync(fd);
    expect(fs.readFileSync(path.join(d, "netmap.json"), "utf8")).toBe(big("b"));
  });

  it("refuses a state file others can read, naming the file and mode", () => {
    const d = tmp();
    fs.chmodSync(d, 0o700);
    const s = StateDir.open(d, random);
    s.writeKey(STATE_FILES.nodeKey, random(32));
    fs.chmodSync(path.join(d, "node.key"), 0o644);
    expect(() => s.readKey(STATE_FILES.nodeKey)).toThrowError(/node\.key has mode 0644/);
  });

  it("keeps a key across opens and refuses a malformed key file", () => {
    const d = tmp();
    fs.chmodSync(d, 0o700);
    const k1 = StateDir.open(d, random).loadOrCreateKey(STATE_FILES.machineKey);
    const k2 = StateDir.open(d, random).loadOrCreateKey(STATE_FILES.machineKey);
    expect(Buffer.from(k2).equals(Buffer.from(k1))).toBe(true);
    expect(fs.readFileSync(path.join(d, "machine.key"), "utf8")).toMatch(/^privkey:[0-9a-f]{64}\n$/);
    fs.writeFileSync(path.join(d, "disco.key"), "garbage", { mode: 0o600 });
    expect(() => StateDir.open(d, random).readKey(STATE_FILES.discoKey)).toThrowError(/disco\.key does not hold a key/);
  });

  it("reports corrupt JSON as state_corrupt naming the file", () => {
    const d = tmp();
    fs.chmodSync(d, 0o700);
    fs.writeFileSync(path.join(d, "prefs.json"), "{", { mode: 0o600 });
    expect(() => StateDir.open(d, random).readJson("prefs.json")).toThrowError(/prefs\.json is not valid JSON/);
  });
});
