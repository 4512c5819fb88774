import { randomBytes, randomUUID } from "node:crypto";
import { API_KEY_PREFIX, hashSecret } from "../../common/access/access.js";
import { keysetPage } from "../../common/db/keyset.js";
import type { Pool } from "../../common/db/pool.js";
import type { Page } from "../../common/rpc/pagination.js";
import type { TenantRow } from "./rows.js";

const COLUMNS = "id, name, status, rate_limit_per_minute, created_at, updated_at, created_at::text AS sort_key";

/** 32 random bytes behind a recognisable prefix; only its SHA-256 is stored. */
function newApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString("base64url");
}

export function createTenantStore(pool: Pool) {
  return {
    async create(name: string): Promise<{ row: TenantRow; apiKey: string }> {
      const apiKey = newApiKey();
      const { rows } = await pool.query<TenantRow>(
        `INSERT INTO tenants (id, name, api_key_hash) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
        [randomUUID(), name, hashSecret(apiKey)],
      );
      return { row: rows[0] as TenantRow, apiKey };
    },

    async list(page: Page): Promise<TenantRow[]> {
      const keyset = keysetPage(page, { sortKey: "created_at", id: "id", idType: "uuid" }, 1);
      const { rows } = await pool.query<TenantRow>(
        `SELECT ${COLUMNS} FROM tenants WHERE ${keyset.where} ${keyset.orderAndLimit}`,
        keyset.params,
      );
      return rows;
    },

    async get(id: string): Promise<TenantRow | undefined> {
      const { rows } = await pool.query<TenantRow>(`SELECT ${COLUMNS} FROM tenants WHERE id = $1`, [id]);
      return rows[0];
    },

    /** Changes what is given: the status, and the own rate limit (null restores the default). */
    async update(
      id: string,
      change: { status?: TenantRow["status"]; rateLimitPerMinute?: number | null },
    ): Promise<TenantRow | undefined> {
      const { rows } = await pool.query<TenantRow>(
        `UPDATE tenants SET status = coalesce($2, status),
           rate_limit_per_minute = CASE WHEN $3 THEN $4::integer ELSE rate_limit_per_minute END,
           updated_at = now()
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, change.status ?? null, change.rateLimitPerMinute !== undefined, change.rateLimitPerMinute ?? null],
      );
      return rows[0];
    },

    async rotateKey(id: string): Promise<{ row: TenantRow; apiKey: string } | undefined> {
      const apiKey = newApiKey();
      const { rows } = await pool.query<TenantRow>(
        `UPDATE tenants SET api_key_hash = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, hashSecret(apiKey)],
      );
      return rows[0] ? { row: rows[0], apiKey } : undefined;
    },

    async findByKeyHash(keyHash: Buffer): Promise<{ id: string; status: string } | undefined> {
      const { rows } = await pool.query<{ id: string; status: string }>(
        "SELECT id, status FROM tenants WHERE api_key_hash = $1",
        [keyHash],
      );
      return rows[0];
    },
  };
}

export type TenantStore = ReturnType<typeof createTenantStore>;
