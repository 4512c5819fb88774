import type { Pool } from "../../common/db/pool.js";
import type { ActivityRow } from "./rows.js";

/** The columns of an ActivityRow, optionally qualified by a table alias. */
export function activityColumns(alias = ""): string {
  const a = alias ? `${alias}.` : "";
  return `${a}id, ${a}conversation_id, ${a}tenant_id, ${a}seq::text AS seq, ${a}type, ${a}text, ${a}attachments,
    ${a}from_id, ${a}from_name, ${a}metadata, ${a}origin_channel_id, ${a}created_at`;
}

export function createActivityStore(pool: Pool) {
  return {
    /** Activities with seq above `after`, ascending. */
    async listAfter(tenantId: string, conversationId: string, after: bigint, limit: number): Promise<ActivityRow[]> {
      const { rows } = await pool.query<ActivityRow>(
        `SELECT ${activityColumns()} FROM activities
         WHERE conversation_id = $1 AND tenant_id = $2 AND activities.seq > $3 ORDER BY activities.seq LIMIT $4`,
        [conversationId, tenantId, after.toString(), limit],
      );
      return rows;
    },

    /** The seq of an activity given as watermark, if it is in that conversation. */
    async seqOf(tenantId: string, conversationId: string, activityId: string): Promise<bigint | undefined> {
      const { rows } = await pool.query<{ seq: string }>(
        "SELECT seq::text AS seq FROM activities WHERE id = $1 AND conversation_id = $2 AND tenant_id = $3",
        [activityId, conversationId, tenantId],
      );
      return rows[0] ? BigInt(rows[0].seq) : undefined;
    },
  };
}

export type ActivityStore = ReturnType<typeof createActivityStore>;
