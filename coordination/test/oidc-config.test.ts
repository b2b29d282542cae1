/** OIDC configuration: flags/env/file merging, completeness and value checks. */
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readConfigFile, readEnv, resolveConfig } from "../src/config.js";

const full = { oidcIssuer: "https://idp.example.com/realms/x/", oidcClientId: "lattice", oidcClientSecret: "s3cret" };

describe("OIDC config", () => {
  it("is off unless an oidc key is given", () => {
    expect(resolveConfig({}).oidc).toBeNull();
  });

  it("resolves a full configuration (issuer kept verbatim, lists lowercased)", () => {
    const cfg = resolveConfig(full, { oidcAllowedDomains: "Example.com, b.org", oidcAllowedUsers: ["X@Y.com"] }).oidc!;
    expect(cfg).toEqual({ issuer: full.oidcIssuer, clientId: "lattice", clientSecret: "s3cret", allowedDomains: ["example.com", "b.org"], allowedUsers: ["x@y.com"], only: false });
  });

  it("names every missing field of a partial configuration", () => {
    expect(() => resolveConfig({ oidcClientId: "x" })).toThrow(/missing --oidc-issuer \(oidcIssuer\), --oidc-client-secret or --oidc-client-secret-file/);
    expect(() => resolveConfig({ oidcOnly: true })).toThrow(/oidcOnly given\): missing --oidc-issuer/);
    expect(() => resolveConfig({ ...full, oidcClientId: undefined })).toThrow(/missing --oidc-client-id \(oidcClientId\)/);
  });

  it("reads the secret from a file and refuses both forms or an empty file", () => {
    const dir = mkdtempSync(join(tmpdir(), "lattice-oidc-cfg-"));
    writeFileSync(join(dir, "secret"), "from-file\n");
    writeFileSync(join(dir, "empty"), "\n");
    const { oidcClientSecret: _s, ...noSecret } = full;
    expect(resolveConfig({ ...noSecret, oidcClientSecretFile: join(dir, "secret") }).oidc!.clientSecret).toBe("from-file");
    expect(() => resolveConfig({ ...full, oidcClientSecretFile: join(dir, "secret") })).toThrow(/not both/);
    expect(() => resolveConfig({ ...noSecret, oidcClientSecretFile: join(dir, "empty") })).toThrow(/oidcClientSecretFile: .* is empty/);
    expect(() => resolveConfig({ ...noSecret, oidcClientSecretFile: join(dir, "nope") })).toThrow(/oidcClientSecretFile: /);
  });

  it("checks the issuer URL and the allow-lists, naming the field and position", () => {
    expect(() => resolveConfig({ ...full, oidcIssuer: "idp.example.com" })).toThrow(/oidcIssuer: "idp.example.com" is not a URL/);
    expect(() => resolveConfig({ ...full, oidcIssuer: "http://idp.example.com" })).toThrow(/must be an https URL/);
    expect(resolveConfig({ ...full, oidcIssuer: "http://127.0.0.1:9999" }).oidc!.issuer).toBe("http://127.0.0.1:9999");
    expect(() => resolveConfig({ ...full, oidcAllowedDomains: "a.com,not a domain" })).toThrow(/oidcAllowedDomains\[1\]/);
    expect(() => resolveConfig({ ...full, oidcAllowedUsers: "a@b.com,bob" })).toThrow(/oidcAllowedUsers\[1\]: "bob"/);
  });

  it("reads LATTICE_CONTROL_OIDC_* variables and config-file keys (unknown keys still rejected)", () => {
    const env = readEnv({ LATTICE_CONTROL_OIDC_ISSUER: full.oidcIssuer, LATTICE_CONTROL_OIDC_CLIENT_ID: "e", LATTICE_CONTROL_OIDC_CLIENT_SECRET: "s", LATTICE_CONTROL_OIDC_ONLY: "true" });
    expect(resolveConfig(env).oidc).toMatchObject({ clientId: "e", only: true });
    expect(() => readEnv({ LATTICE_CONTROL_OIDC_ONLY: "maybe" })).toThrow(/LATTICE_CONTROL_OIDC_ONLY: want true or false/);
    const dir = mkdtempSync(join(tmpdir(), "lattice-oidc-cfg-"));
    writeFileSync(join(dir, "ok.json"), JSON.stringify({ ...full, oidcAllowedDomains: ["example.com"] }));
    expect(resolveConfig(readConfigFile(join(dir, "ok.json"))).oidc!.allowedDomains).toEqual(["example.com"]);
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ ...full, oidcScopes: "x" }));
    expect(() => readConfigFile(join(dir, "bad.json"))).toThrow(/oidcScopes/);
    writeFileSync(join(dir, "type.json"), JSON.stringify({ ...full, oidcOnly: "yes" }));
    expect(() => readConfigFile(join(dir, "type.json"))).toThrow(/oidcOnly/);
  });
});
