import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CATEGORIES, loadCategory, ownCorpusDir, runCase } from "./corpus.js";

const here = dirname(fileURLToPath(import.meta.url));

/** Case ids listed in KNOWN-DIFFERENCES.md (lines "- `id`: reason"). */
function knownDifferences(): Set<string> {
  const text = readFileSync(join(here, "../KNOWN-DIFFERENCES.md"), "utf8");
  return new Set([...text.matchAll(/^- `([^`]+)`/gm)].map((m) => m[1]));
}

describe("Tailscale policy conformance corpus", () => {
  it("reproduces what Tailscale's control plane compiled (>= 98%, every miss documented)", () => {
    const known = knownDifferences();
    const failing: { id: string; diffs: string[] }[] = [];
    let total = 0;
    let passed = 0;
    const lines: string[] = [];
    for (const cat of CATEGORIES) {
      const cases = loadCategory(cat);
      let ok = 0;
      for (const c of cases) {
        const diffs = runCase(c);
        if (diffs.length === 0) ok++;
        else failing.push({ id: c.id, diffs });
      }
      lines.push(`${cat.padEnd(11)} ${ok}/${cases.length} (${((100 * ok) / cases.length).toFixed(1)}%)`);
      total += cases.length;
      passed += ok;
    }
    const rate = (100 * passed) / total;
    lines.push(`overall     ${passed}/${total} (${rate.toFixed(1)}%)`);
    console.log(`policy conformance:\n${lines.join("\n")}`);
    const undocumented = failing.filter((f) => !known.has(f.id));
    for (const f of undocumented) console.log(`UNDOCUMENTED FAILURE ${f.id}:\n${f.diffs.slice(0, 3).join("\n")}`);
    expect(undocumented.map((f) => f.id)).toEqual([]);
    expect(rate).toBeGreaterThanOrEqual(98);
  });
});

describe("Lattice's own corpus-style cases (test/corpus/lattice, from Tailscale's documentation)", () => {
  const files = readdirSync(ownCorpusDir()).filter((f) => f.endsWith(".json"));
  it("has cases for every kind of issue 7 (ssh, exit routes, ipsets, errors, policy tests)", () => {
    expect(files.sort()).toEqual(["errors.json", "ipsets.json", "policytest.json", "routes.json", "ssh.json"]);
  });
  for (const f of files) {
    for (const c of loadCategory(f.replace(/\.json$/, ""), ownCorpusDir())) {
      it(`${c.id}: ${c.description ?? ""}`, () => {
        expect(runCase(c)).toEqual([]);
      });
    }
  }
});
