import type { Pool } from "../../common/db/pool.js";
import type { DeliveryRow } from "./deliveries.js";

/** Which deliveries a bulk retry takes (RetryDeliveries). */
export interface RetryFilter {
  status: "pending" | "failed";
  channelId?: string | undefined;
}

/**
 * What a retry does, for one delivery or many, written once: pending with a
 * fresh try budget, due now or when its channel's open circuit allows, and a
 * `retry_requested` entry on its timeline in the same statement. `picked`
 * selects (id, attempts) of the deliveries to retry and locks them.
 */
function retrySql(picked: string, extra = ""): string {
  return `WITH picked AS (${picked}),
     retried AS (
       UPDATE deliveries d SET status = 'pending', attempts = 0, updated_at = now(),
         next_attempt_at = greatest(now(), (SELECT c.opened_until FROM channel_circuits c
                                            WHERE c.channel_id = d.channel_id AND c.state = 'open'))
       FROM picked WHERE d.id = picked.id AND d.status <> 'delivered'
       RETURNING d.*),
     noted AS (
       INSERT INTO delivery_attempts (delivery_id, tenant_id, kind, attempt, started_at, finished_at)
       SELECT retried.id, retried.tenant_id, 'retry_requested', picked.attempts, now(), now()
       FROM retried JOIN picked ON picked.id = retried.id)
     SELECT retried.*, retried.created_at::text AS sort_key${extra} FROM retried ORDER BY retried.created_at, retried.id`;
}

// $1 tenant, $2 status, $3 channel or null: served by deliveries_by_status (tenant_id, status, created_at, id).
const MATCHING = "tenant_id = $1 AND status = $2 AND ($3::uuid IS NULL OR channel_id = $3)";

/** Schedules a delivery (failed or pending) for a try now, with a fresh try budget; undefined when delivered or not the tenant's. */
export async function retryOne(pool: Pool, tenantId: string, id: string): Promise<DeliveryRow | undefined> {
  const { rows } = await pool.query<DeliveryRow>(
    retrySql(
      "SELECT id, attempts FROM deliveries WHERE id = $1 AND tenant_id = $2 AND status <> 'delivered' FOR UPDATE",
    ),
    [id, tenantId],
  );
  return rows[0];
}

/**
 * How many deliveries retryMatching would take now (at most `max`), and
 * whether more match: the same filter and snapshot rules, nothing changed.
 */
export async function countMatching(pool: Pool, tenantId: string, filter: RetryFilter, max: number) {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM deliveries WHERE ${MATCHING} LIMIT $4 + 1) matching`,
    [tenantId, filter.status, filter.channelId ?? null, max],
  );
  const matched = rows[0]?.n ?? 0;
  return { count: Math.min(matched, max), hasMore: matched > max };
}

/** Retries the oldest `max` deliveries matching the filter, as retryOne does each. */
export async function retryMatching(pool: Pool, tenantId: string, filter: RetryFilter, max: number) {
  // The count reads the snapshot the update started from (as a dry run does), not the retried rows.
  const more = `, (SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE ${MATCHING} LIMIT $4 + 1) m) > $4 AS has_more`;
  const { rows } = await pool.query<DeliveryRow & { has_more: boolean }>(
    retrySql(`SELECT id, attempts FROM deliveries WHERE ${MATCHING} ORDER BY created_at, id LIMIT $4 FOR UPDATE`, more),
    [tenantId, filter.status, filter.channelId ?? null, max],
  );
  return { retried: rows as DeliveryRow[], hasMore: rows[0]?.has_more ?? false };
}
