import { randomBytes, randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { keysetPage } from "../../common/db/keyset.js";
import type { Pool } from "../../common/db/pool.js";
import type { Page } from "../../common/rpc/pagination.js";
import type { ChannelRow } from "./rows.js";

const COLUMNS =
  "id, tenant_id, name, type, status, config, secret, created_at, updated_at, created_at::text AS sort_key";

/** Channel secrets sign inbound webhooks and mint client tokens. */
function newChannelSecret(): string {
  return `cvs_${randomBytes(32).toString("base64url")}`;
}

export interface ChannelChanges {
  name?: string;
  status?: ChannelRow["status"];
  config?: JsonObject;
}

export function createChannelStore(pool: Pool) {
  return {
    async create(tenantId: string, name: string, type: string, config: JsonObject): Promise<ChannelRow> {
      const { rows } = await pool.query<ChannelRow>(
        `INSERT INTO channels (id, tenant_id, name, type, config, secret, secret_hash)
         VALUES ($1, $2, $3, $4, $5, $6, sha256(convert_to($6, 'UTF8'))) RETURNING ${COLUMNS}`,
        [randomUUID(), tenantId, name, type, config, newChannelSecret()],
      );
      return rows[0] as ChannelRow;
    },

    async list(tenantId: string, page: Page): Promise<ChannelRow[]> {
      const keyset = keysetPage(page, { sortKey: "created_at", id: "id", idType: "uuid" }, 2);
      const { rows } = await pool.query<ChannelRow>(
        `SELECT ${COLUMNS} FROM channels WHERE tenant_id = $1 AND ${keyset.where} ${keyset.orderAndLimit}`,
        [tenantId, ...keyset.params],
      );
      return rows;
    },

    async get(tenantId: string, id: string): Promise<ChannelRow | undefined> {
      const { rows } = await pool.query<ChannelRow>(
        `SELECT ${COLUMNS} FROM channels WHERE id = $1 AND tenant_id = $2`,
        [id, tenantId],
      );
      return rows[0];
    },

    async update(tenantId: string, id: string, changes: ChannelChanges): Promise<ChannelRow | undefined> {
      const { rows } = await pool.query<ChannelRow>(
        `UPDATE channels SET name = coalesce($3, name), status = coalesce($4, status),
           config = coalesce($5, config), updated_at = now()
         WHERE id = $1 AND tenant_id = $2 RETURNING ${COLUMNS}`,
        [id, tenantId, changes.name ?? null, changes.status ?? null, changes.config ?? null],
      );
      return rows[0];
    },

    async rotateSecret(tenantId: string, id: string): Promise<ChannelRow | undefined> {
      const { rows } = await pool.query<ChannelRow>(
        `UPDATE channels SET secret = $3, secret_hash = sha256(convert_to($3, 'UTF8')), updated_at = now()
         WHERE id = $1 AND tenant_id = $2 RETURNING ${COLUMNS}`,
        [id, tenantId, newChannelSecret()],
      );
      return rows[0];
    },
  };
}

export type ChannelStore = ReturnType<typeof createChannelStore>;
