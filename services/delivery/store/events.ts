import { randomUUID } from "node:crypto";
import type { JsonValue } from "@bufbuild/protobuf";
import type { Pool, PoolClient } from "../../common/db/pool.js";
import type { LogRecord } from "../../common/events/event-log.js";

export interface DeadLetterRow {
  id: string;
  consumer: string;
  topic: string;
  event_id: string;
  key: string;
  tenant_id: string;
  payload: JsonValue;
  error: string;
  attempts: number;
  created_at: Date;
  replayed_at: Date | null;
}

/** What the delivery service's log consumers remember: events done, and events they gave up on. */
export function createEventStore(pool: Pool) {
  return {
    /** Claims events for a consumer inside the transaction doing their work; returns those not done before. */
    async claim(client: PoolClient, consumer: string, eventIds: string[]): Promise<Set<string>> {
      const { rows } = await client.query<{ event_id: string }>(
        `INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING RETURNING event_id`,
        [consumer, eventIds],
      );
      return new Set(rows.map((r) => r.event_id));
    },

    async deadLetter(consumer: string, record: LogRecord, error: string, attempts: number): Promise<DeadLetterRow> {
      const { rows } = await pool.query<DeadLetterRow>(
        `INSERT INTO processing_dead_letters (id, consumer, topic, event_id, key, tenant_id, payload, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
        [
          randomUUID(),
          consumer,
          record.topic,
          record.eventId,
          record.key,
          record.tenantId,
          JSON.stringify(record.payload),
          error.slice(0, 2000),
          attempts,
        ],
      );
      return rows[0] as DeadLetterRow;
    },

    async listDeadLetters(all: boolean, limit: number, offset: number): Promise<DeadLetterRow[]> {
      const { rows } = await pool.query<DeadLetterRow>(
        `SELECT * FROM processing_dead_letters WHERE $1 OR replayed_at IS NULL
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`,
        [all, limit, offset],
      );
      return rows;
    },

    async getDeadLetter(id: string): Promise<DeadLetterRow | undefined> {
      const { rows } = await pool.query<DeadLetterRow>("SELECT * FROM processing_dead_letters WHERE id = $1", [id]);
      return rows[0];
    },

    async markReplayed(id: string): Promise<DeadLetterRow | undefined> {
      const { rows } = await pool.query<DeadLetterRow>(
        "UPDATE processing_dead_letters SET replayed_at = now() WHERE id = $1 RETURNING *",
        [id],
      );
      return rows[0];
    },

    /** Forgets processed event ids past the log's own retention: they cannot come again. */
    async pruneProcessed(olderThanHours: number): Promise<void> {
      await pool.query("DELETE FROM processed_events WHERE processed_at < now() - make_interval(hours => $1)", [
        olderThanHours,
      ]);
    },
  };
}

export type ConsumerEventStore = ReturnType<typeof createEventStore>;
