import pg from "pg";

// int8 (seq, counts) arrive as strings by default; we convert them to bigint
// where we read them, so keep the driver's default and be explicit.
export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/**
 * A connection pool. An idle connection that the server drops (restart,
 * failover, shutdown) emits "error" on the pool; without a listener that
 * would crash the process, so it is logged and the pool reconnects on demand.
 */
export function createPool(url: string, onIdleError: (error: Error) => void, max = 20): Pool {
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000 });
  pool.on("error", onIdleError);
  return pool;
}

/** Runs `work` in a transaction, rolling back on any error. */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
