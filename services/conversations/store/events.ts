import { randomUUID } from "node:crypto";
import { keysetPage } from "../../common/db/keyset.js";
import { inTransaction, type Pool } from "../../common/db/pool.js";
import { EVENTS_TOPIC } from "../../common/events/envelopes.js";
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
          `INSERT INTO outbox (event_id, topic, key, tenant_id, payload) VALUES ($1, $2, $3, $4, $5)`,
          [randomUUID(), EVENTS_TOPIC, tenantId, tenantId, JSON.stringify(toPayload(row))],
        );
        return row;
      });
    },

    async list(tenantId: string, page: Page): Promise<EventRow[]> {
      const keyset = keysetPage(page, { sortKey: "created_at", id: "id", idType: "uuid" }, 2);
      const { rows } = await pool.query<EventRow>(
        `SELECT ${COLUMNS} FROM tenant_events WHERE tenant_id = $1 AND ${keyset.where} ${keyset.orderAndLimit}`,
        [tenantId, ...keyset.params],
      );
      return rows;
    },
  };
}

export type EventStore = ReturnType<typeof createEventStore>;
