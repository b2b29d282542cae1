// SSH host keys: the three types (ed25519, ecdsa-sha2-nistp256, RSA with rsa-sha2-512/256),
// reuse of the host's own keys when readable, generated keys 0600 and stable across
// restarts, and what a client sees (ssh-keyscan per algorithm) equals hostPublicKeys().
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { generateHostKey, loadHostKeys, publicHostKeys } from "../../src/ssh/hostkeys.js";
import { utils } from "ssh2";
import { SshServer, type SshBackend } from "../../src/ssh/server.js";

const dirs: string[] = [];
const tmp = (p: string): string => {
  const d = mkdtempSync(join(tmpdir(), p));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const nullBackend: SshBackend = {
  whois: () => undefined,
  self: () => undefined,
  sshPolicy: () => undefined,
  onPolicyChange: () => () => undefined,
  fetchCheck: () => Promise.reject(new Error("none")),
};

describe("SSH host keys", () => {
  it("every generated ed25519 key parses (ssh2 writes an unparseable one about 2 in 1000: regenerated)", () => {
    for (let i = 0; i < 3000; i++) {
      const k = utils.parseKey(generateHostKey("ed25519"));
      expect(k instanceof Error ? k.message : "ok").toBe("ok");
    }
  });

  it("generates ed25519, ecdsa P-256 and RSA-2048 once under <state>/ssh (0600) and reuses them", () => {
    const state = tmp("lattice-hk-state-");
    const sys = tmp("lattice-hk-sys-");
    const a = loadHostKeys({ stateDir: state, systemDir: sys });
    expect(a.map((k) => k.publicKey.split(" ")[0])).toEqual(["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]);
    for (const k of a) {
      expect(k.path.startsWith(join(state, "ssh"))).toBe(true);
      expect(statSync(k.path).mode & 0o777).toBe(0o600);
    }
    const rsaBits = execFileSync("ssh-keygen", ["-l", "-f", a[2]!.path]).toString();
    expect(rsaBits.startsWith("2048 ")).toBe(true);
    const b = loadHostKeys({ stateDir: state, systemDir: sys });
    expect(publicHostKeys(b)).toEqual(publicHostKeys(a));
  });

  it("reuses the host's own /etc/ssh-style keys when readable", () => {
    const state = tmp("lattice-hk-state-");
    const sys = tmp("lattice-hk-sys-");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(sys, "ssh_host_ed25519_key")]);
    const keys = loadHostKeys({ stateDir: state, systemDir: sys });
    const pub = execFileSync("ssh-keygen", ["-y", "-f", join(sys, "ssh_host_ed25519_key")]).toString().trim().split(" ").slice(0, 2).join(" ");
    expect(keys[0]!.publicKey).toBe(pub);
    expect(keys[0]!.path).toBe(join(sys, "ssh_host_ed25519_key"));
    expect(keys[1]!.path.startsWith(join(state, "ssh"))).toBe(true);
  });

  it("clients negotiating each host-key algorithm see the published keys", async () => {
    const keys = loadHostKeys({ stateDir: tmp("lattice-hk-state-"), systemDir: tmp("lattice-hk-sys-") });
    const server = new SshServer({ backend: nullBackend, hostKeys: keys, log: () => undefined });
    const { port } = await server.listen("127.0.0.1", 0);
    try {
      const published = server.hostPublicKeys();
      for (const t of ["ed25519", "ecdsa", "rsa"]) {
        const out = await runOut("ssh-keyscan", ["-p", String(port), "-t", t, "127.0.0.1"]);
        const line = out.stdout.split("\n").find((l) => l.startsWith("[127.0.0.1]"));
        expect(line, t).toBeDefined();
        expect(published).toContain(line!.split(" ").slice(1, 3).join(" "));
      }
      // RSA is signed with SHA-2 (rsa-sha2-512/256) for clients that refuse ssh-rsa (SHA-1).
      for (const alg of ["rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256", "ssh-ed25519"]) {
        const r = await runOut("ssh", ["-v", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", `HostKeyAlgorithms=${alg}`, "-p", String(port), "root@127.0.0.1", "true"]);
        expect(r.stderr, alg).toContain(`kex: host key algorithm: ${alg}`);
        expect(r.stderr, alg).toContain("Permanently added");
      }
    } finally {
      await server.close();
    }
  });
});

function runOut(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (_e, stdout, stderr) => resolve({ stdout: String(stdout), stderr: String(stderr) }));
  });
}
