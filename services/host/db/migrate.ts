import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Pool } from "../../common/db/pool.js";
import type { Logger } from "../../common/obs/logger.js";

// Any constant works; it only has to be the same in every process.
const MIGRATION_LOCK_KEY = 7_310_042_001;

/**
 * Applies `<dir>/NNN_name.sql` files not yet recorded for `owner`, in order,
 * each in its own transaction, under a cluster-wide advisory lock so that
 * several processes starting at once apply each file exactly once.
 */
export async function migrate(pool: Pool, owner: string, dir: string, log: Logger): Promise<void> {
  const files = readdirSync(dir)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort();
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      owner text NOT NULL, version text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (owner, version))`);
    const { rows } = await client.query<{ version: string }>("SELECT version FROM schema_migrations WHERE owner = $1", [
      owner,
    ]);
    const applied = new Set(rows.map((r) => r.version));
    for (const file of files) {
      if (applied.has(file)) continue;
      await client.query("BEGIN");
      try {
        await client.query(readFileSync(join(dir, file), "utf8"));
        await client.query("INSERT INTO schema_migrations (owner, version) VALUES ($1, $2)", [owner, file]);
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
