import type { JsonObject } from "@bufbuild/protobuf";
import { inTransaction, type Pool } from "../common/db/pool.js";
import type { LogRecord } from "../common/event-log.js";
import type { DeliveryDirectory } from "./directory.js";
import type { DeliveryStore } from "./store/deliveries.js";
import type { ConsumerEventStore } from "./store/events.js";

export const ACTIVITIES_TOPIC = "converger.activities";
export const DELIVERY_CONSUMER = "delivery";

interface ActivityPayload {
  type: string;
  activity?: JsonObject & { id: string; conversation_id: string; tenant_id: string; seq: string };
}

/**
 * Turns each committed activity into its delivery (design.md §3 Targets): one
 * row for the conversation's channel, unless that channel's adapter produced
 * the activity. Idempotent on the event id and on (activity, channel), so a
 * redelivered event never delivers twice.
 */
export function createActivityConsumer(deps: {
  pool: Pool;
  deliveries: DeliveryStore;
  events: ConsumerEventStore;
  directory: DeliveryDirectory;
  onQueued: () => void;
}) {
  return async function handle(record: LogRecord): Promise<void> {
    const payload = record.payload as unknown as ActivityPayload;
    const activity = payload?.activity;
    if (payload?.type !== "activity.created" || !activity) return;
    const route = await deps.directory.route(activity.conversation_id);
    if (!route) throw new Error(`conversation ${activity.conversation_id} is unknown to the directory`);
    const cameFromTarget = activity.origin_channel_id === route.channelId;
    const queued = await inTransaction(deps.pool, async (client) => {
      if (!(await deps.events.claim(client, DELIVERY_CONSUMER, record.eventId))) return false;
      if (cameFromTarget) return false;
      const row = await deps.deliveries.insert(client, {
        tenantId: route.tenantId,
        activityId: activity.id,
        conversationId: activity.conversation_id,
        seq: activity.seq,
        channelId: route.channelId,
        externalId: route.externalId,
        activity,
      });
      return row !== undefined;
    });
    if (queued) deps.onQueued();
  };
}
