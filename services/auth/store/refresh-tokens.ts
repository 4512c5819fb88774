import { randomBytes, randomUUID } from "node:crypto";
import { hashSecret } from "../../common/access/access.js";
import { inTransaction, type Pool } from "../../common/db/pool.js";
import { REFRESH_TOKEN_DAYS } from "../tokens.js";

export const REFRESH_TOKEN_PREFIX = "cvr_";

export interface RefreshGrant {
  clientId: string;
  tenantId: string;
  familyId: string;
  scope: string;
}

export type RotateOutcome =
  | { ok: { grant: RefreshGrant; token: string } }
  | { error: "unknown" | "expired" | "reused" | "revoked" | "disabled" | "scope" };

/**
 * Opaque refresh tokens, stored as SHA-256. Each use rotates the token; a
 * rotated token presented again means it leaked, so its whole family is
 * revoked (OAuth 2.0 Security BCP, refresh token rotation).
 */
export function createRefreshTokenStore(pool: Pool) {
  async function insert(client: { query: Pool["query"] }, grant: RefreshGrant, id = randomUUID()) {
    const token = REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");
    await client.query(
      `INSERT INTO refresh_tokens (id, token_hash, client_id, tenant_id, family_id, scope, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))`,
      [id, hashSecret(token), grant.clientId, grant.tenantId, grant.familyId, grant.scope, REFRESH_TOKEN_DAYS],
    );
    return token;
  }

  return {
    issue(grant: Omit<RefreshGrant, "familyId">): Promise<string> {
      return insert(pool, { ...grant, familyId: randomUUID() });
    },

    /** Revokes `token` and issues its successor, or reports why not (revoking the family on reuse). */
    rotate(token: string, narrowScope: (granted: string) => string | undefined): Promise<RotateOutcome> {
      return inTransaction(pool, async (client) => {
        const { rows } = await client.query<{
          id: string;
          client_id: string;
          tenant_id: string;
          family_id: string;
          scope: string;
          expired: boolean;
          revoked_at: Date | null;
          replaced_by: string | null;
          disabled: boolean;
        }>(
          `SELECT r.id, r.client_id, r.tenant_id, r.family_id, r.scope, r.expires_at < now() AS expired,
                  r.revoked_at, r.replaced_by, c.disabled
           FROM refresh_tokens r JOIN oauth_clients c USING (client_id)
           WHERE r.token_hash = $1 FOR UPDATE OF r`,
          [hashSecret(token)],
        );
        const row = rows[0];
        if (!row) return { error: "unknown" };
        if (row.replaced_by) {
          await client.query(
            "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1",
            [row.family_id],
          );
          return { error: "reused" };
        }
        if (row.revoked_at) return { error: "revoked" };
        if (row.expired) return { error: "expired" };
        if (row.disabled) return { error: "disabled" };
        const scope = narrowScope(row.scope);
        if (scope === undefined) return { error: "scope" };
        const nextId = randomUUID();
        const grant = { clientId: row.client_id, tenantId: row.tenant_id, familyId: row.family_id, scope };
        const next = await insert(client, grant, nextId);
        await client.query("UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2 WHERE id = $1", [
          row.id,
          nextId,
        ]);
        return { ok: { grant, token: next } };
      });
    },

    /** RFC 7009: revoking an unknown token is not an error. */
    async revoke(token: string): Promise<void> {
      await pool.query("UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_hash = $1", [
        hashSecret(token),
      ]);
    },
  };
}

export type RefreshTokenStore = ReturnType<typeof createRefreshTokenStore>;
