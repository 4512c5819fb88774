import { randomBytes } from "node:crypto";
import { hashSecret } from "../../common/access/access.js";
import { keysetPage } from "../../common/db/keyset.js";
import type { Pool } from "../../common/db/pool.js";
import type { Page } from "../../common/rpc/pagination.js";

export interface OAuthClientRow {
  client_id: string;
  tenant_id: string;
  name: string;
  scopes: string[];
  secret_hash: Buffer;
  disabled: boolean;
  created_at: Date;
  sort_key: string;
}

const COLUMNS = "client_id, tenant_id, name, scopes, secret_hash, disabled, created_at, created_at::text AS sort_key";
export const CLIENT_SECRET_PREFIX = "cvcs_";
export const CLIENT_SECRET_LENGTH = CLIENT_SECRET_PREFIX.length + 43;

function newClientSecret(): string {
  return CLIENT_SECRET_PREFIX + randomBytes(32).toString("base64url");
}

export function createClientStore(pool: Pool) {
  return {
    async create(tenantId: string, name: string, scopes: string[]) {
      const secret = newClientSecret();
      const clientId = `cvc_${randomBytes(16).toString("base64url")}`;
      const { rows } = await pool.query<OAuthClientRow>(
        `INSERT INTO oauth_clients (client_id, tenant_id, name, scopes, secret_hash) VALUES ($1, $2, $3, $4, $5)
         RETURNING ${COLUMNS}`,
        [clientId, tenantId, name, scopes, hashSecret(secret)],
      );
      return { row: rows[0] as OAuthClientRow, secret };
    },

    async get(clientId: string): Promise<OAuthClientRow | undefined> {
      const { rows } = await pool.query<OAuthClientRow>(`SELECT ${COLUMNS} FROM oauth_clients WHERE client_id = $1`, [
        clientId,
      ]);
      return rows[0];
    },

    async list(tenantId: string, page: Page): Promise<OAuthClientRow[]> {
      const keyset = keysetPage(page, { sortKey: "created_at", id: "client_id", idType: "text" }, 2);
      const { rows } = await pool.query<OAuthClientRow>(
        `SELECT ${COLUMNS} FROM oauth_clients WHERE tenant_id = $1 AND ${keyset.where} ${keyset.orderAndLimit}`,
        [tenantId, ...keyset.params],
      );
      return rows;
    },

    /** Disables the client and revokes its live refresh tokens, together. */
    async disable(tenantId: string, clientId: string): Promise<OAuthClientRow | undefined> {
      const { rows } = await pool.query<OAuthClientRow>(
        `WITH revoked AS (
           UPDATE refresh_tokens SET revoked_at = now()
           WHERE client_id = $2 AND tenant_id = $1 AND revoked_at IS NULL)
         UPDATE oauth_clients SET disabled = true, updated_at = now()
         WHERE client_id = $2 AND tenant_id = $1 RETURNING ${COLUMNS}`,
        [tenantId, clientId],
      );
      return rows[0];
    },

    async rotateSecret(tenantId: string, clientId: string) {
      const secret = newClientSecret();
      const { rows } = await pool.query<OAuthClientRow>(
        `UPDATE oauth_clients SET secret_hash = $3, updated_at = now()
         WHERE client_id = $2 AND tenant_id = $1 RETURNING ${COLUMNS}`,
        [tenantId, clientId, hashSecret(secret)],
      );
      return rows[0] ? { row: rows[0], secret } : undefined;
    },
  };
}

export type ClientStore = ReturnType<typeof createClientStore>;
