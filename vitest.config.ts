import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "services/**/*.test.ts", "packages/**/*.test.ts"],
    globalSetup: ["test/helpers/global-postgres.ts"],
    // Two cores: one worker per core keeps PostgreSQL and the app responsive.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
