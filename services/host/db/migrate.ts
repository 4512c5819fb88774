import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ServiceName } from "../../common/config.js";
import type { Pool } from "../../common/db/pool.js";
import type { Logger } from "../../common/obs/logger.js";
import { adoptLegacyTables } from "./legacy-layout.js";
import { schemaFor } from "./pools.js";

// Any constant works; it only has to be the same in every process.
const MIGRATION_LOCK_KEY = 7_310_042_001;

/** The `NNN_name.sql` files of a migrations folder, in the order they apply. */
function migrationFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort();
}

/**
 * Applies `<dir>/NNN_name.sql` files not yet recorded in the owner's schema,
 * in order, each in its own transaction with search_path set to that schema
 * (so the files name their tables bare), under a cluster-wide advisory lock so
 * that several processes starting at once apply each file exactly once. A
 * database still in the shared public layout is first moved into the schema.
 */
export async function migrate(pool: Pool, owner: ServiceName, dir: string, log: Logger): Promise<void> {
  const schema = schemaFor(owner);
  const files = migrationFiles(dir);
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
      version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    await adoptLegacyTables(client, { owner, schema, dir }, log);
    const { rows } = await client.query<{ version: string }>(`SELECT version FROM ${schema}.schema_migrations`);
    const applied = new Set(rows.map((r) => r.version));
    for (const file of files) {
      if (applied.has(file)) continue;
      await client.query("BEGIN");
      try {
        await client.query(`SET LOCAL search_path TO ${schema}`);
        await client.query(readFileSync(join(dir, file), "utf8"));
        await client.query(`INSERT INTO ${schema}.schema_migrations (version) VALUES ($1)`, [file]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK");
        throw new Error(`migration ${owner}/${file} failed: ${(error as Error).message}`, { cause: error });
      }
      log.info({ owner, file }, "migration applied");
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => undefined);
    client.release();
  }
}
