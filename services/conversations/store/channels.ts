import { randomBytes, randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { hashSecret } from "../../common/access/access.js";
import { keysetPage } from "../../common/db/keyset.js";
import type { Pool } from "../../common/db/pool.js";
import type { Page } from "../../common/rpc/pagination.js";
import { type ChannelSealer, SEALED_COLUMNS, type StoredChannel } from "./channel-sealing.js";
import type { ChannelRow } from "./rows.js";

const COLUMNS = `id, tenant_id, name, type, status, config, secret, ${SEALED_COLUMNS}, created_at, updated_at,
  created_at::text AS sort_key`;

type StoredRow = Omit<ChannelRow, "secret"> & StoredChannel;

/** Channel secrets sign inbound webhooks and mint client tokens. */
function newChannelSecret(): string {
  return `cvs_${randomBytes(32).toString("base64url")}`;
}

export interface ChannelChanges {
  name?: string;
  status?: ChannelRow["status"];
  config?: JsonObject;
}

/**
 * Channels with their secret and secret config values sealed before any
 * write and opened after each read: callers see them in clear, PostgreSQL
 * never does (the secret's SHA-256, for lookups, is computed here too).
 */
export function createChannelStore(pool: Pool, sealer: ChannelSealer) {
  const opened = (row: StoredRow | undefined): ChannelRow | undefined => {
    if (!row) return undefined;
    const { data_key: _, secret_sealed: __, ...open } = sealer.open(row);
    return open;
  };
  const select = async (tenantId: string, id: string) =>
    (await pool.query<StoredRow>(`SELECT ${COLUMNS} FROM channels WHERE id = $1 AND tenant_id = $2`, [id, tenantId]))
      .rows[0];
  /** The row as stored, sealed first if it is still in clear (written by an older process). */
  async function sealedRow(tenantId: string, id: string): Promise<StoredRow | undefined> {
    const row = await select(tenantId, id);
    if (!row || row.data_key) return row;
    const columns = sealer.sealNew(tenantId, id, row.type, row.config, row.secret ?? "");
    await pool.query(
      `UPDATE channels SET data_key = $2, secret_sealed = $3, config = $4, secret = NULL
       WHERE id = $1 AND data_key IS NULL`,
      [id, columns.data_key, columns.secret_sealed, columns.config],
    );
    return select(tenantId, id);
  }

  return {
    async create(tenantId: string, name: string, type: string, config: JsonObject): Promise<ChannelRow> {
      const id = randomUUID();
      const secret = newChannelSecret();
      const sealed = sealer.sealNew(tenantId, id, type, config, secret);
      const { rows } = await pool.query<StoredRow>(
        `INSERT INTO channels (id, tenant_id, name, type, config, secret_hash, data_key, secret_sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
        [id, tenantId, name, type, sealed.config, hashSecret(secret), sealed.data_key, sealed.secret_sealed],
      );
      return opened(rows[0]) as ChannelRow;
    },

    async list(tenantId: string, page: Page): Promise<ChannelRow[]> {
      const keyset = keysetPage(page, { sortKey: "created_at", id: "id", idType: "uuid" }, 2);
      const { rows } = await pool.query<StoredRow>(
        `SELECT ${COLUMNS} FROM channels WHERE tenant_id = $1 AND ${keyset.where} ${keyset.orderAndLimit}`,
        [tenantId, ...keyset.params],
      );
      return rows.map((row) => opened(row) as ChannelRow);
    },

    async get(tenantId: string, id: string): Promise<ChannelRow | undefined> {
      return opened(await select(tenantId, id));
    },

    async update(tenantId: string, id: string, changes: ChannelChanges): Promise<ChannelRow | undefined> {
      let config: JsonObject | null = null;
      if (changes.config) {
        const row = await sealedRow(tenantId, id);
        if (!row) return undefined;
        config = sealer.sealConfig(sealer.dataKeyOf(row), row.type, changes.config);
      }
      const { rows } = await pool.query<StoredRow>(
        `UPDATE channels SET name = coalesce($3, name), status = coalesce($4, status),
           config = coalesce($5, config), updated_at = now()
         WHERE id = $1 AND tenant_id = $2 RETURNING ${COLUMNS}`,
        [id, tenantId, changes.name ?? null, changes.status ?? null, config],
      );
      return opened(rows[0]);
    },

    async rotateSecret(tenantId: string, id: string): Promise<ChannelRow | undefined> {
      const row = await sealedRow(tenantId, id);
      if (!row) return undefined;
      const key = sealer.dataKeyOf(row);
      const secret = newChannelSecret();
      const { rows } = await pool.query<StoredRow>(
        `UPDATE channels SET secret_sealed = $3, secret_hash = $4, updated_at = now()
         WHERE id = $1 AND tenant_id = $2 RETURNING ${COLUMNS}`,
        [id, tenantId, key.seal("secret", Buffer.from(secret)), hashSecret(secret)],
      );
      return opened(rows[0]);
    },
  };
}

export type ChannelStore = ReturnType<typeof createChannelStore>;
