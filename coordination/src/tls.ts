/**
 * Self-signed TLS for `--tls-self-signed`: generated once with the `openssl` tool and
 * kept in the settings table, so restarts — also with another `--server-url` — present
 * the same certificate and nodes that pinned its fingerprint keep trusting it. A new one
 * is made only after `lattice-control tls rotate` (then at the next start).
 */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SettingsService } from "./services/settings.js";

/** Settings key of the stored self-signed certificate. */
export const SELF_SIGNED_SETTING = "tls_self_signed";

/** A self-signed certificate as kept. */
export interface SelfSigned {
  cert: string;
  key: string;
  /** The host name it was made for. */
  host: string;
}

/** SHA-256 fingerprint of a PEM certificate, as `AA:BB:…` (what browsers and `openssl x509 -fingerprint -sha256` show). */
export function fingerprint(certPem: string | Buffer): string {
  return new X509Certificate(certPem).fingerprint256;
}

/**
 * Loads the server's self-signed certificate, or generates one for `host` when none is
 * stored. A stored one is kept even when `host` changed (its `host` says which it names).
 */
export async function selfSignedCert(settings: SettingsService, host: string): Promise<SelfSigned> {
  const stored = await settings.get(SELF_SIGNED_SETTING);
  if (stored) return JSON.parse(stored) as SelfSigned;
  const dir = mkdtempSync(join(tmpdir(), "lattice-tls-"));
  try {
    const san = /^[\d.]+$/.test(host) || host.includes(":") ? `IP:${host.replace(/^\[|\]$/g, "")}` : `DNS:${host}`;
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "825",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-subj", `/CN=${host}`, "-addext", `subjectAltName=${san}`],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const v = { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8"), host };
    await settings.set(SELF_SIGNED_SETTING, JSON.stringify(v));
    return v;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
