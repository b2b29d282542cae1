/** HTTPS: --tls-self-signed (stable across restarts) and --tls-cert/--tls-key, with the node protocol over TLS. */
import { afterAll, describe, expect, it } from "vitest";
import https from "node:https";
import { X509Certificate } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient } from "@lattice/control-client";
import { startServer, TestNode, type ServerProc } from "./harness.js";

function peerCert(url: string): Promise<{ status: number; fingerprint: string }> {
  return new Promise((res, rej) => {
    const req = https.get(`${url}/health`, { rejectUnauthorized: false }, (r) => {
      const cert = (r.socket as import("node:tls").TLSSocket).getPeerCertificate();
      r.resume();
      r.on("end", () => res({ status: r.statusCode ?? 0, fingerprint: cert.fingerprint256 }));
    });
    req.on("error", rej);
  });
}

describe("TLS", () => {
  const servers: ServerProc[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it("--tls-self-signed serves HTTPS with the same certificate after a restart", async () => {
    const s = await startServer({ args: ["--tls-self-signed"], https: true });
    servers.push(s);
    const a = await peerCert(s.url);
    expect(a.status).toBe(200);
    await s.stop();
    const s2 = await startServer({ args: ["--tls-self-signed"], https: true, db: s.db, dir: s.dir, port: s.port });
    servers.push(s2);
    const b = await peerCert(s2.url);
    expect(b.fingerprint).toBe(a.fingerprint);
    // The node protocol works over TLS.
    expect((await s2.cli(["users", "create", "alice"])).code).toBe(0);
    const k = (await s2.cli(["keys", "create", "--user", "alice", "--preapproved"])).stdout.trim();
    const n = new TestNode(s2.url, "tls-node");
    n.client = await ControlClient.connect({ serverUrl: s2.url, machineKey: n.machine, tls: { rejectUnauthorized: false } });
    expect((await n.register({ Auth: { AuthKey: k } })).MachineAuthorized).toBe(true);
    n.close();
  });

  it("--tls-cert/--tls-key use the given certificate", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-tls-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-subj", "/CN=lattice-test", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
    const s = await startServer({ args: ["--tls-cert", join(dir, "c.pem"), "--tls-key", join(dir, "k.pem")], https: true });
    servers.push(s);
    const got = await peerCert(s.url);
    const want = new X509Certificate(execFileSync("cat", [join(dir, "c.pem")])).fingerprint256;
    expect(got.fingerprint).toBe(want);
  });
});

describe("TLS fingerprint (issue 11)", () => {
  it("--tls-self-signed keeps its certificate across URL changes, prints the fingerprint, `tls fingerprint` shows it, `tls rotate` replaces it", async () => {
    const s = await startServer({ args: ["--tls-self-signed"], https: true });
    const first = await peerCert(s.url);
    const printed = /TLS certificate SHA-256 fingerprint: ([0-9A-F:]{95})/.exec(s.stdout())?.[1];
    expect(printed).toBe(first.fingerprint);
    expect((await s.cli(["tls", "fingerprint"])).stdout.trim()).toBe(first.fingerprint);
    await s.stop();
    // Another server URL (host name): the same certificate, with a note.
    const s2 = await startServer({ args: ["--tls-self-signed", "--server-url", `https://localhost:${s.port}`], https: true, db: s.db, dir: s.dir, port: s.port });
    expect((await peerCert(s2.url)).fingerprint).toBe(first.fingerprint);
    expect(s2.stdout()).toContain("(made for 127.0.0.1; kept so pinned fingerprints stay valid");
    expect((await s2.cli(["tls", "rotate"])).stdout.trim()).toBe("the self-signed certificate will be replaced at the next start");
    await s2.stop();
    const s3 = await startServer({ args: ["--tls-self-signed"], https: true, db: s.db, dir: s.dir, port: s.port });
    try {
      const third = await peerCert(s3.url);
      expect(third.fingerprint).not.toBe(first.fingerprint);
      expect((await s3.cli(["tls", "fingerprint"])).stdout.trim()).toBe(third.fingerprint);
      expect((await s3.cli(["audit", "--json"])).stdout).toContain(`"action":"tls.rotate"`);
    } finally {
      await s3.stop();
    }
  });

  it("`tls fingerprint` on a plain-HTTP server says there is no TLS", async () => {
    const s = await startServer();
    try {
      const r = await s.cli(["tls", "fingerprint"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("does not serve TLS");
    } finally {
      await s.stop();
    }
  });
});
