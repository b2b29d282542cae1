/**
 * The server's side of the control protocol stands on @lattice/controlbase (issue 8 seam):
 * coordination's sources never import the node-side client package, which only its tests
 * (playing a node) and benchmarks may use.
 */
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|mts|js|mjs)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

describe("coordination package seams", () => {
  it("src/ imports the control protocol core from @lattice/controlbase, never @lattice/control-client", () => {
    const files = sources(join(root, "src"));
    expect(files.length).toBeGreaterThan(10);
    const offenders = files
      .filter((f) => /(?:from|import)\s*\(?\s*["']@lattice\/control-client["']/.test(readFileSync(f, "utf8")))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
    const uses = files.filter((f) => readFileSync(f, "utf8").includes('"@lattice/controlbase"'));
    expect(uses.map((f) => relative(root, f))).toContain(join("src", "noise", "upgrade.ts"));
  });

  it("package.json lists @lattice/control-client only as a devDependency", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
    expect(pkg.dependencies?.["@lattice/controlbase"]).toBe("workspace:*");
    expect(pkg.dependencies?.["@lattice/control-client"]).toBeUndefined();
    expect(pkg.devDependencies?.["@lattice/control-client"]).toBe("workspace:*");
  });
});
