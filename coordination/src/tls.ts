/**
 * Self-signed TLS for `--tls-self-signed`: generated once with the `openssl` tool and
 * kept in the settings table, so restarts present the same certificate.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SettingsService } from "./services/settings.js";

/** Generates (or loads) the server's self-signed certificate for the URL's host name. */
export async function selfSignedCert(settings: SettingsService, host: string): Promise<{ cert: string; key: string }> {
  const stored = await settings.get("tls_self_signed");
  if (stored) {
    const v = JSON.parse(stored) as { cert: string; key: string; host: string };
    if (v.host === host) return v;
  }
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
    await settings.set("tls_self_signed", JSON.stringify(v));
    return v;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
