// `lattice ssh`: runs the ssh program ($LATTICE_SSH here: a script recording what it was
// given) with a known_hosts built from the peer's published keys and strict checking;
// the exit code comes back; a peer without keys is refused before ssh runs.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { knownHostsFor, splitTarget } from "../src/commands/ssh.js";
import { FakeLocalApi } from "./fake-localapi.js";
import { NOW, runCli } from "./harness.js";

let fake: FakeLocalApi;
let dir: string;
beforeEach(async () => {
  fake = await new FakeLocalApi(NOW).start();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "lattice-ssh-test-"));
});
afterEach(async () => {
  await fake.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv7Y0dSxEw2XnHxwa1l7QxU0YH2E2pVnq+dV7mVtq1G";
const EC = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAAA";

/** A fake ssh: writes argv (one per line) and the known_hosts file's text to `out`, exits with $CODE. */
function fakeSsh(out: string): string {
  const p = path.join(dir, "fake-ssh");
  fs.writeFileSync(
    p,
    `#!/bin/sh\nprintf '%s\\n' "$@" > ${out}.args\nfor a in "$@"; do case "$a" in UserKnownHostsFile=*) f="\${a#UserKnownHostsFile=}"; cat "$f" > ${out}.known; stat -c %a "$f" > ${out}.mode;; esac; done\nexit \${CODE:-0}\n`,
    { mode: 0o755 },
  );
  return p;
}

describe("lattice ssh", () => {
  it("runs ssh against the peer's IP with a 0600 known_hosts of its published keys, strict checking, user and args passed through; ssh's exit code comes back and the file is removed", async () => {
    const charlie = Object.values(fake.state.status.Peer!).find((p) => p.HostName === "charlie")!;
    charlie.sshHostKeys = [ED, `${EC} comment`];
    const out = path.join(dir, "rec");
    const r = await runCli(["--socket", fake.socketPath, "ssh", "root@charlie", "ls", "-la", "/tmp"], { env: { LATTICE_SSH: fakeSsh(out), CODE: "7", PATH: process.env["PATH"] } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(7);
    const args = fs.readFileSync(`${out}.args`, "utf8").trim().split("\n");
    const khFile = args.find((a) => a.startsWith("UserKnownHostsFile="))!.slice("UserKnownHostsFile=".length);
    expect(args).toEqual(["-o", `UserKnownHostsFile=${khFile}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=100.64.0.3", "-l", "root", "--", "100.64.0.3", "ls", "-la", "/tmp"]);
    expect(fs.readFileSync(`${out}.known`, "utf8")).toBe(`100.64.0.3 ${ED}\n100.64.0.3 ${EC}\n`);
    expect(fs.readFileSync(`${out}.mode`, "utf8").trim()).toBe("600");
    expect(fs.existsSync(khFile)).toBe(false);
  });

  it("a peer publishing no host keys is refused (exit 1, ssh never runs); an unknown host too; no destination is a usage error", async () => {
    const out = path.join(dir, "rec");
    const ssh = fakeSsh(out);
    const r = await runCli(["--socket", fake.socketPath, "ssh", "charlie"], { env: { LATTICE_SSH: ssh, PATH: process.env["PATH"] } });
    expect(r).toMatchObject({ code: 1, stderr: 'lattice: 100.64.0.3 publishes no usable SSH host keys (is "lattice set --ssh" on there?)\n' });
    expect(fs.existsSync(`${out}.args`)).toBe(false);
    expect((await runCli(["--socket", fake.socketPath, "ssh", "nobody"], { env: { LATTICE_SSH: ssh, PATH: process.env["PATH"] } })).code).toBe(1);
    expect((await runCli(["--socket", fake.socketPath, "ssh", "-p"], { env: { LATTICE_SSH: ssh, PATH: process.env["PATH"] } })).code).toBe(2);
  });

  it("splitTarget / knownHostsFor: user at the last @, bad key lines skipped", () => {
    expect(splitTarget("a@b@host")).toEqual({ user: "a@b", host: "host" });
    expect(splitTarget("host")).toEqual({ user: null, host: "host" });
    expect(() => splitTarget("@host")).toThrow(/bad destination/);
    expect(knownHostsFor("1.2.3.4", ["garbage", ED])).toBe(`1.2.3.4 ${ED}\n`);
    expect(() => knownHostsFor("1.2.3.4", ["x\ny"])).toThrow(/no usable/);
  });
});
