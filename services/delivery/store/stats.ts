import type { Pool } from "../../common/db/pool.js";

export interface CountsRow {
  /** 3: every delivery; 1: one tenant's; 0: one channel's (GROUPING of tenant_id, channel_id). */
  level: 0 | 1 | 3;
  tenant_id: string | null;
  channel_id: string | null;
  pending: string;
  delivered: string;
  failed: string;
}

export interface BlockedLineRow {
  tenant_id: string;
  conversation_id: string;
  channel_id: string;
  delivery_id: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Date | null;
  waiting: string;
  lines: string;
}

export interface OpenCircuitRow {
  tenant_id: string;
  channel_id: string;
  consecutive_failures: number;
  opened_until: Date;
  half_open: boolean;
}

/** What GetDeliveryStats reads; every figure is aggregated by PostgreSQL, on the indexes named per query. */
export function createStatsStore(pool: Pool) {
  return {
    /**
     * Counts overall, per tenant and per channel in one pass over
     * deliveries_counts (tenant_id, channel_id, status); the tenants and
     * channels with most failed, then most pending, first, `limit` of each.
     */
    async counts(limit: number): Promise<CountsRow[]> {
      const { rows } = await pool.query<CountsRow>(
        `WITH counts AS (
           SELECT GROUPING(tenant_id, channel_id) AS level, tenant_id, channel_id,
                  count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status = 'delivered') AS delivered,
                  count(*) FILTER (WHERE status = 'failed') AS failed
           FROM deliveries GROUP BY GROUPING SETS ((), (tenant_id), (tenant_id, channel_id))),
         ranked AS (
           SELECT counts.*, row_number() OVER (
             PARTITION BY level ORDER BY failed DESC, pending DESC, tenant_id, channel_id) AS rank
           FROM counts)
         SELECT level, tenant_id, channel_id, pending, delivered, failed FROM ranked WHERE rank <= $1
         ORDER BY level DESC, rank`,
        [limit],
      );
      return rows;
    },

    /** Pending deliveries due for longer than `seconds` and not out on a try (deliveries_due). */
    async overdue(seconds: number): Promise<bigint> {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM deliveries
         WHERE status = 'pending' AND next_attempt_at < now() - make_interval(secs => $1)
           AND (lease_until IS NULL OR lease_until < now())`,
        [seconds],
      );
      return BigInt(rows[0]?.n ?? 0);
    },

    /**
     * Heads of (conversation, channel) lines that failed a try and hold
     * others back, most waiting first, with the number of such lines
     * (deliveries_line, partial on pending).
     */
    async blockedLines(limit: number): Promise<BlockedLineRow[]> {
      const { rows } = await pool.query<BlockedLineRow>(
        `WITH heads AS (
           SELECT DISTINCT ON (conversation_id, channel_id) id, tenant_id, conversation_id, channel_id, seq,
                  attempts, last_error, next_attempt_at
           FROM deliveries WHERE status = 'pending'
           ORDER BY conversation_id, channel_id, seq),
         blocked AS (
           SELECT h.*, (SELECT count(*) FROM deliveries w
                        WHERE w.status = 'pending' AND w.conversation_id = h.conversation_id
                          AND w.channel_id = h.channel_id AND w.seq > h.seq) AS waiting
           FROM heads h WHERE h.attempts > 0)
         SELECT tenant_id, conversation_id, channel_id, id AS delivery_id, attempts, last_error, next_attempt_at,
                waiting, count(*) OVER () AS lines
         FROM blocked WHERE waiting > 0
         ORDER BY waiting DESC, next_attempt_at, id LIMIT $1`,
        [limit],
      );
      return rows;
    },

    /** Open (and half-open) circuits, latest cool-down end first (channel_circuits_open). */
    async openCircuits(limit: number): Promise<OpenCircuitRow[]> {
      const { rows } = await pool.query<OpenCircuitRow>(
        `SELECT tenant_id, channel_id, consecutive_failures, opened_until, opened_until <= now() AS half_open
         FROM channel_circuits WHERE state = 'open' ORDER BY opened_until DESC, channel_id LIMIT $1`,
        [limit],
      );
      return rows;
    },

    /** Processing dead letters not replayed, and the oldest one's time (processing_dead_letters_open). */
    async deadLetters(): Promise<{ count: bigint; oldest: Date | null }> {
      const { rows } = await pool.query<{ n: string; oldest: Date | null }>(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM processing_dead_letters WHERE replayed_at IS NULL",
      );
      return { count: BigInt(rows[0]?.n ?? 0), oldest: rows[0]?.oldest ?? null };
    },
  };
}

export type DeliveryStatsStore = ReturnType<typeof createStatsStore>;
