import type { Pool } from "../../common/db/pool.js";

/** When a try ran and what its last HTTP request answered, for its timeline entry. */
export interface TryTiming {
  startedAt: Date;
  finishedAt: Date;
  httpStatus?: number | undefined;
}

export interface AttemptRow {
  id: string;
  delivery_id: string;
  kind: "try" | "status" | "retry_requested";
  attempt: number;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  outcome: "delivered" | "retry" | "failed" | null;
  error: string | null;
  http_status: number | null;
  provider_status: string | null;
}

// A delivery retried again and again keeps a long timeline; the console wants its latest part.
const MAX_TIMELINE = 1000;

/** Reads delivery timelines; the statements that change a delivery write its entries (deliveries.ts, retries.ts). */
export function createAttemptStore(pool: Pool) {
  return {
    /** The newest entries of a tenant's delivery, oldest first; undefined when the delivery is not the tenant's. */
    async timeline(tenantId: string, deliveryId: string): Promise<AttemptRow[] | undefined> {
      // No row: not the tenant's delivery. One row without an entry: its delivery, nothing on it yet.
      const { rows } = await pool.query<AttemptRow | { id: null }>(
        `SELECT a.id, a.delivery_id, a.kind, a.attempt, a.started_at, a.finished_at, a.outcome, a.error,
                a.http_status, a.provider_status,
                round(extract(epoch FROM a.finished_at - a.started_at) * 1000)::int AS duration_ms
         FROM deliveries d LEFT JOIN LATERAL (
           SELECT * FROM delivery_attempts WHERE delivery_id = d.id ORDER BY recorded_at DESC, id DESC LIMIT $3) a ON true
         WHERE d.id = $1 AND d.tenant_id = $2
         ORDER BY a.recorded_at, a.id`,
        [deliveryId, tenantId, MAX_TIMELINE],
      );
      if (rows.length === 0) return undefined;
      return rows.filter((r): r is AttemptRow => r.id !== null);
    },
  };
}

export type AttemptStore = ReturnType<typeof createAttemptStore>;
