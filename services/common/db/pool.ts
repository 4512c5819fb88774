import pg from "pg";

// int8 (seq, counts) arrive as strings by default; we convert them to bigint
// where we read them, so keep the driver's default and be explicit.
export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  max?: number;
  /**
   * The one schema unqualified names resolve in, set on every connection at
   * startup: a service's SQL names its own tables bare, and a bare name of
   * another service's table fails instead of reaching across.
   */
  schema?: string;
}

/**
 * A connection pool. An idle connection that the server drops (restart,
 * failover, shutdown) emits "error" on the pool; without a listener that
 * would crash the process, so it is logged and the pool reconnects on demand.
 */
export function createPool(url: string, onIdleError: (error: Error) => void, options: PoolOptions = {}): Pool {
  const connection = options.schema ? withSearchPath(url, options.schema) : { connectionString: url };
  const pool = new pg.Pool({ ...connection, max: options.max ?? 20, idleTimeoutMillis: 30_000 });
  pool.on("error", onIdleError);
  return pool;
}

/**
 * Startup options that set search_path. pg lets an `options` parameter of the
 * URL replace its `options` field, so when the URL has one ours is appended
 * to it there (an operator's `-c statement_timeout=…` keeps working).
 */
function withSearchPath(url: string, schema: string): pg.PoolConfig {
  if (!/^[a-z_]+$/.test(schema)) throw new Error(`not a schema name: ${schema}`);
  const option = `-c search_path=${schema}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // A bare socket path rather than a URL: it carries no options of its own.
    return { connectionString: url, options: option };
  }
  const own = parsed.searchParams.get("options");
  parsed.searchParams.set("options", own ? `${own} ${option}` : option);
  return { connectionString: parsed.toString() };
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
