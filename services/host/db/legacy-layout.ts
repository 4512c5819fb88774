import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PoolClient } from "../../common/db/pool.js";
import type { Logger } from "../../common/obs/logger.js";

export interface LegacyOwner {
  owner: string;
  /** The schema the owner's tables move into (it exists already). */
  schema: string;
  /** The owner's migrations folder. */
  dir: string;
}

// Where the owner's applied migrations are replayed to learn which tables they made; never committed.
const REPLAY_SCHEMA = "converger_migration_replay";

/**
 * Before each service had its schema, every table sat in public and one
 * `public.schema_migrations (owner, version, applied_at)` recorded what ran.
 * Moves the owner's tables into its schema with ALTER TABLE … SET SCHEMA
 * (their indexes, constraints, triggers and the sequences their serial
 * columns own go with them; rows are untouched) and carries its bookkeeping
 * over, applied_at included, so no migration runs twice; the shared table is
 * dropped once no owner is left in it. All of one owner in one transaction.
 * Called under the migration lock.
 */
export async function adoptLegacyTables(client: PoolClient, target: LegacyOwner, log: Logger): Promise<void> {
  if (!(await hasLegacyBookkeeping(client))) return;
  await client.query("BEGIN");
  try {
    const { rows } = await client.query<{ version: string; applied_at: Date }>(
      "SELECT version, applied_at FROM public.schema_migrations WHERE owner = $1 ORDER BY version FOR UPDATE",
      [target.owner],
    );
    const tables =
      rows.length > 0
        ? await tablesMadeBy(
            client,
            target.dir,
            rows.map((r) => r.version),
          )
        : [];
    for (const table of tables) {
      await client.query(`ALTER TABLE public.${client.escapeIdentifier(table)} SET SCHEMA ${target.schema}`);
    }
    await client.query(
      `INSERT INTO ${target.schema}.schema_migrations (version, applied_at)
       SELECT * FROM unnest($1::text[], $2::timestamptz[])`,
      [rows.map((r) => r.version), rows.map((r) => r.applied_at)],
    );
    await client.query("DELETE FROM public.schema_migrations WHERE owner = $1", [target.owner]);
    const left = await client.query("SELECT 1 FROM public.schema_migrations LIMIT 1");
    if (left.rowCount === 0) await client.query("DROP TABLE public.schema_migrations");
    await client.query("COMMIT");
    if (rows.length > 0) log.info({ owner: target.owner, schema: target.schema, tables }, "tables moved out of public");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw new Error(`moving ${target.owner}'s tables out of public failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Our shared bookkeeping table, told apart from another tool's table of the same name by its owner column. */
async function hasLegacyBookkeeping(client: PoolClient): Promise<boolean> {
  const { rowCount } = await client.query(
    `SELECT 1 FROM information_schema.columns
     WHERE table_schema = 'public' AND table_name = 'schema_migrations' AND column_name = 'owner'`,
  );
  return rowCount === 1;
}

/**
 * The tables the given migrations create, learnt by running them again in a
 * scratch schema that is rolled back: the migration files stay the one record
 * of which table belongs to which service.
 */
async function tablesMadeBy(client: PoolClient, dir: string, versions: string[]): Promise<string[]> {
  await client.query("SAVEPOINT replay");
  try {
    await client.query(`CREATE SCHEMA ${REPLAY_SCHEMA}`);
    await client.query(`SET LOCAL search_path TO ${REPLAY_SCHEMA}`);
    for (const version of versions) await client.query(readFileSync(join(dir, version), "utf8"));
    const { rows } = await client.query<{ name: string }>(
      `SELECT relname AS name FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind IN ('r', 'p')
       ORDER BY oid`,
      [REPLAY_SCHEMA],
    );
    return rows.map((r) => r.name);
  } finally {
    await client.query("ROLLBACK TO SAVEPOINT replay");
  }
}
