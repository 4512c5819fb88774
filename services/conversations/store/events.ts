import { randomUUID } from "node:crypto";
import { inTransaction, type Pool } from "../../common/db/pool.js";
import type { Page } from "../../common/rpc/pagination.js";
import type { EventRow } from "./rows.js";

const COLUMNS = "id, tenant_id, message, created_at, created_at::text AS sort_key";

export function createEventStore(pool: Pool) {
  return {
    /** Stores the event with its outbox row in one transaction. */
    async create(tenantId: string, message: string, toPayload: (row: EventRow) => unknown): Promise<EventRow> {
      return inTransaction(pool, async (client) => {
        const { rows } = await client.query<EventRow>(
          `INSERT INTO tenant_events (id, tenant_id, message) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
          [randomUUID(), tenantId, message],
        );
        const row = rows[0] as EventRow;
        await client.query(
          `INSERT INTO outbox (event_id, topic, key, tenant_id, payload) VALUES ($1, 'converger.events', $2, $3, $4)`,
          [randomUUID(), tenantId, tenantId, JSON.stringify(toPayload(row))],
        );
        return row;
      });
    },

    async list(tenantId: string, page: Page): Promise<EventRow[]> {
      const { rows } = await pool.query<EventRow>(
        `SELECT ${COLUMNS} FROM tenant_events WHERE tenant_id = $1
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
         ORDER BY created_at DESC, id DESC LIMIT $4`,
        [tenantId, page.after?.sortKey ?? null, page.after?.id ?? null, page.limit + 1],
      );
      return rows;
    },
  };
}

export type EventStore = ReturnType<typeof createEventStore>;
