import { defineConfig } from "vitest/config";

// Tests import workspace packages from their TypeScript sources (the "source" export
// condition), so `vitest` works without a prior `tsc -b`; the programs run from dist/.
const conditions = ["source", "node", "import", "default"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "daemon/test/**/*.test.ts", "coordination/test/**/*.test.ts", "derp/test/**/*.test.ts", "cli/test/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: "system",
          include: ["test/**/*.test.ts"],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
