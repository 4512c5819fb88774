import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ConversationsService } from "../../../gen/converger/v1/conversations_pb.js";
import type { Pool } from "../../common/db/pool.js";
import { outboxStats } from "../store/outbox.js";

/** The operator's view of the outbox (design.md §10 Deliveries), beside the conversation RPCs. */
export type OutboxRpc = "getOutboxStats";

export function outboxImpl(pool: Pool): Pick<ServiceImpl<typeof ConversationsService>, OutboxRpc> {
  return {
    async getOutboxStats() {
      const row = await outboxStats(pool);
      return {
        backlog: BigInt(row.backlog),
        oldestCreatedAt: row.oldest_created_at ? timestampFromDate(row.oldest_created_at) : undefined,
        oldestAgeSeconds: Math.max(0, row.oldest_age_seconds ?? 0),
      };
    },
  };
}
