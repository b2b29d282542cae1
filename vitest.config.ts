import { defineConfig } from "vitest/config";

// Tests import workspace packages from their TypeScript sources (the "source" export
// condition), so `vitest` works without a prior `tsc -b`; the programs run from dist/.
const conditions = ["source", "module", "node", "development|production"];
// Externalized node_modules are loaded by Node itself: only the "source" condition is ours.
const externalConditions = ["source"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "daemon/test/**/*.test.ts", "coordination/test/**/*.test.ts", "derp/test/**/*.test.ts", "cli/test/**/*.test.ts"],
          exclude: ["**/node_modules/**", "coordination/test/bench/**"],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        // Figures, not assertions: `npx vitest run --project bench` (not part of `npm test`).
        test: { name: "bench", include: ["coordination/test/bench/**/*.test.ts", "packages/*/bench/**/*.test.ts"], testTimeout: 600_000 },
      },
      {
        extends: true,
        test: {
          name: "system",
          include: ["test/**/*.test.ts"],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          setupFiles: ["test/setup/stale-shell-locks.ts"],
        },
      },
    ],
  },
});
