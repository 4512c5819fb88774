import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { keysetPage } from "../../common/db/keyset.js";
import type { Pool } from "../../common/db/pool.js";
import type { Page } from "../../common/rpc/pagination.js";
import type { ActivityRow, ConversationRow } from "./rows.js";

const COLUMNS = `c.id, c.tenant_id, c.channel_id, c.external_id, c.status, c.members, c.metadata,
  c.last_seq, c.created_at, c.updated_at, c.activity_at::text AS sort_key`;

export interface ListedConversation extends ConversationRow {
  last_activity: ActivityRow | null;
  unread_count: string | null;
}

/** A client token's user and the one conversation its token is for. */
export interface ListViewer {
  userId: string;
  conversationId: string;
}

export type CreateConversationOutcome = { row: ConversationRow } | { error: "channel_not_found" | "channel_inactive" };

export function createConversationStore(pool: Pool) {
  return {
    /** Inserts only if the channel is the tenant's own and active, in one statement. */
    async create(
      tenantId: string,
      channelId: string,
      members: string[],
      metadata: JsonObject,
    ): Promise<CreateConversationOutcome> {
      const { rows } = await pool.query<ConversationRow>(
        `WITH ch AS (SELECT id FROM channels WHERE id = $2 AND tenant_id = $1 AND status = 'active')
         INSERT INTO conversations AS c (id, tenant_id, channel_id, members, metadata)
         SELECT $3, $1, ch.id, $4, $5 FROM ch
         RETURNING ${COLUMNS}`,
        [tenantId, channelId, randomUUID(), members, metadata],
      );
      if (rows[0]) return { row: rows[0] };
      const channel = await pool.query("SELECT 1 FROM channels WHERE id = $1 AND tenant_id = $2", [
        channelId,
        tenantId,
      ]);
      return { error: channel.rowCount ? "channel_inactive" : "channel_not_found" };
    },

    async get(tenantId: string, id: string): Promise<ConversationRow | undefined> {
      const { rows } = await pool.query<ConversationRow>(
        `SELECT ${COLUMNS} FROM conversations c WHERE c.id = $1 AND c.tenant_id = $2`,
        [id, tenantId],
      );
      return rows[0];
    },

    async close(tenantId: string, id: string): Promise<ConversationRow | undefined> {
      const { rows } = await pool.query<ConversationRow>(
        `UPDATE conversations c SET status = 'closed', updated_at = now()
         WHERE c.id = $1 AND c.tenant_id = $2 RETURNING ${COLUMNS}`,
        [id, tenantId],
      );
      return rows[0];
    },

    /**
     * Newest activity first, each with its last activity (the row at
     * last_seq, a primary-key lookup) and, for a client token's user, the
     * unread count: one query whatever the page size. A client token sees its
     * own conversation only (design.md §2), even where its user is a member
     * of others: those belong to other tokens.
     */
    async list(tenantId: string, page: Page, viewer?: ListViewer): Promise<ListedConversation[]> {
      const keyset = keysetPage(page, { sortKey: "c.activity_at", id: "c.id", idType: "uuid" }, 4);
      const { rows } = await pool.query<ListedConversation>(
        `SELECT ${COLUMNS},
           CASE WHEN a.id IS NULL THEN NULL ELSE json_build_object(
             'id', a.id, 'conversation_id', a.conversation_id, 'tenant_id', a.tenant_id, 'seq', a.seq::text,
             'type', a.type, 'text', a.text, 'attachments', a.attachments, 'from_id', a.from_id,
             'from_name', a.from_name, 'metadata', a.metadata, 'origin_channel_id', a.origin_channel_id,
             'created_at', a.created_at) END AS last_activity,
           CASE WHEN $2::text IS NULL THEN NULL
             ELSE (c.last_seq - coalesce(r.read_up_to, 0))::text END AS unread_count
         FROM conversations c
         LEFT JOIN activities a ON a.conversation_id = c.id AND a.seq = c.last_seq
         LEFT JOIN read_positions r ON r.conversation_id = c.id AND r.user_id = $2::text
         WHERE c.tenant_id = $1
           AND ($2::text IS NULL OR (c.id = $3::uuid AND c.members @> ARRAY[$2::text]))
           AND ${keyset.where} ${keyset.orderAndLimit}`,
        [tenantId, viewer?.userId ?? null, viewer?.conversationId ?? null, ...keyset.params],
      );
      for (const row of rows) {
        if (row.last_activity) row.last_activity.created_at = new Date(row.last_activity.created_at);
      }
      return rows;
    },

    async markRead(tenantId: string, conversationId: string, userId: string, upTo: bigint | undefined) {
      const { rows } = await pool.query<{ read_up_to: string }>(
        `INSERT INTO read_positions AS r (tenant_id, conversation_id, user_id, read_up_to)
         SELECT c.tenant_id, c.id, $3, least(coalesce($4::bigint, c.last_seq), c.last_seq)
         FROM conversations c WHERE c.id = $2 AND c.tenant_id = $1
         ON CONFLICT (conversation_id, user_id) DO UPDATE
           SET read_up_to = greatest(r.read_up_to, excluded.read_up_to), updated_at = now()
         RETURNING read_up_to::text`,
        [tenantId, conversationId, userId, upTo === undefined ? null : upTo.toString()],
      );
      return rows[0] ? BigInt(rows[0].read_up_to) : undefined;
    },
  };
}

export type ConversationStore = ReturnType<typeof createConversationStore>;
