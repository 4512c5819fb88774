import type { Pool } from "../../common/db/pool.js";

export interface OutboxStatsRow {
  backlog: string;
  oldest_created_at: Date | null;
  oldest_age_seconds: number | null;
}

/** How far the outbox relay is behind, by the database's clock; both reads use outbox_unpublished (id). */
export async function outboxStats(pool: Pool): Promise<OutboxStatsRow> {
  const { rows } = await pool.query<OutboxStatsRow>(
    `SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS backlog, oldest.created_at AS oldest_created_at,
            extract(epoch FROM now() - oldest.created_at)::float8 AS oldest_age_seconds
     FROM (SELECT 1) one LEFT JOIN LATERAL (
       -- Ids follow commit order closely enough: the lowest unpublished id is the one waiting longest.
       SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1) oldest ON true`,
  );
  return rows[0] as OutboxStatsRow;
}
