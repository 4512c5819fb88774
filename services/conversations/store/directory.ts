import { randomUUID, timingSafeEqual } from "node:crypto";
import { hashSecret } from "../../common/access/access.js";
import type { Pool } from "../../common/db/pool.js";
import { type ChannelSealer, SEALED_COLUMNS, type StoredChannel } from "./channel-sealing.js";

/** Credential and membership lookups other services make through DirectoryService. */
export function createDirectoryStore(pool: Pool, sealer: ChannelSealer) {
  return {
    async tenantByApiKey(key: string): Promise<{ id: string; active: boolean } | undefined> {
      const { rows } = await pool.query<{ id: string; active: boolean }>(
        "SELECT id, status = 'active' AS active FROM tenants WHERE api_key_hash = $1",
        [hashSecret(key)],
      );
      return rows[0];
    },

    async tenantStatus(
      tenantId: string,
    ): Promise<{ active: boolean; rate_limit_per_minute: number | null } | undefined> {
      const { rows } = await pool.query<{ active: boolean; rate_limit_per_minute: number | null }>(
        "SELECT status = 'active' AS active, rate_limit_per_minute FROM tenants WHERE id = $1",
        [tenantId],
      );
      return rows[0];
    },

    /**
     * The channel a secret belongs to (client-token minting). The index finds
     * it by the secret's SHA-256; the answer is then the constant-time
     * comparison of the digests, never a comparison of the secret itself.
     */
    async channelBySecret(secret: string) {
      const digest = hashSecret(secret);
      const { rows } = await pool.query<{
        id: string;
        tenant_id: string;
        channel_active: boolean;
        tenant_active: boolean;
        secret_hash: Buffer;
      }>(
        `SELECT c.id, c.tenant_id, c.status = 'active' AS channel_active, t.status = 'active' AS tenant_active,
                c.secret_hash
         FROM channels c JOIN tenants t ON t.id = c.tenant_id WHERE c.secret_hash = $1`,
        [digest],
      );
      const row = rows[0];
      if (!row || !timingSafeEqual(row.secret_hash, digest)) return undefined;
      const { secret_hash: _, ...channel } = row;
      return channel;
    },

    /** A channel with config and secret in clear, and whether it and its tenant are active. */
    async channelRecord(channelId: string) {
      const { rows } = await pool.query<StoredChannel & { channel_active: boolean; tenant_active: boolean }>(
        `SELECT c.id, c.tenant_id, c.type, c.status = 'active' AS channel_active,
                t.status = 'active' AS tenant_active, c.config, c.secret, ${SEALED_COLUMNS}
         FROM channels c JOIN tenants t ON t.id = c.tenant_id WHERE c.id = $1`,
        [channelId],
      );
      if (!rows[0]) return undefined;
      const { data_key: _, secret_sealed: __, ...channel } = sealer.open(rows[0]);
      return channel;
    },

    async activityOwner(activityId: string) {
      const { rows } = await pool.query<{ tenant_id: string; conversation_id: string }>(
        "SELECT tenant_id, conversation_id FROM activities WHERE id = $1",
        [activityId],
      );
      return rows[0];
    },

    async conversationRoute(conversationId: string) {
      const { rows } = await pool.query<{ tenant_id: string; channel_id: string; external_id: string | null }>(
        "SELECT tenant_id, channel_id, external_id FROM conversations WHERE id = $1",
        [conversationId],
      );
      return rows[0];
    },

    /** The channel's conversation for a provider thread, opened (with the sender as member) when new. */
    async conversationForExternal(tenantId: string, channelId: string, externalId: string, memberId: string) {
      const inserted = await pool.query<{ id: string }>(
        `INSERT INTO conversations (id, tenant_id, channel_id, external_id, members)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (channel_id, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING id`,
        [randomUUID(), tenantId, channelId, externalId, [memberId]],
      );
      if (inserted.rows[0]) return inserted.rows[0].id;
      const { rows } = await pool.query<{ id: string }>(
        "SELECT id FROM conversations WHERE channel_id = $1 AND external_id = $2",
        [channelId, externalId],
      );
      if (!rows[0]) throw new Error("conversation for external id vanished");
      return rows[0].id;
    },

    /**
     * Adds a member to an existing conversation of the tenant (on `channelId`
     * when given) whose channel is active; says why not otherwise.
     */
    async join(tenantId: string, conversationId: string, channelId: string | null, userId: string) {
      const { rows } = await pool.query<{ channel_id: string; channel_active: boolean }>(
        `SELECT c.channel_id, ch.status = 'active' AS channel_active
         FROM conversations c JOIN channels ch ON ch.id = c.channel_id
         WHERE c.id = $1 AND c.tenant_id = $2 AND ($3::uuid IS NULL OR c.channel_id = $3::uuid)`,
        [conversationId, tenantId, channelId],
      );
      const found = rows[0];
      if (!found) return "not_found" as const;
      if (!found.channel_active) return "channel_inactive" as const;
      await pool.query(
        `UPDATE conversations SET members = array_append(members, $2), updated_at = now()
         WHERE id = $1 AND NOT ($2 = ANY(members))`,
        [conversationId, userId],
      );
      return { channelId: found.channel_id };
    },
  };
}

export type DirectoryStore = ReturnType<typeof createDirectoryStore>;
