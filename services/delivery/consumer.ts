import type { JsonObject } from "@bufbuild/protobuf";
import { adapterOf } from "../channel-adapters/index.js";
import { inTransaction, type Pool } from "../common/db/pool.js";
import type { LogRecord } from "../common/events/event-log.js";
import type { DeliveryDirectory } from "./directory.js";
import type { DeliveryStore, NewDelivery } from "./store/deliveries.js";
import type { ConsumerEventStore } from "./store/events.js";

export const ACTIVITIES_TOPIC = "converger.activities";
export const DELIVERY_CONSUMER = "delivery";

interface ActivityPayload {
  type: string;
  activity?: JsonObject & { id: string; conversation_id: string; seq: string };
}

/**
 * Turns committed activities into their deliveries (design.md §3 Targets): one
 * row for the conversation's channel, unless that channel's adapter produced
 * the activity. Idempotent on the event id and on (activity, channel), so a
 * redelivered event never delivers twice. A batch is one transaction.
 */
export function createActivityConsumer(deps: {
  pool: Pool;
  deliveries: DeliveryStore;
  events: ConsumerEventStore;
  directory: DeliveryDirectory;
  onQueued: () => void;
}) {
  async function targetOf(record: LogRecord): Promise<NewDelivery | undefined> {
    const payload = record.payload as unknown as ActivityPayload;
    const activity = payload?.activity;
    if (payload?.type !== "activity.created" || !activity) return undefined;
    const route = await deps.directory.route(activity.conversation_id);
    if (!route) throw new Error(`conversation ${activity.conversation_id} is unknown to the directory`);
    if (activity.origin_channel_id === route.channelId) return undefined;
    const channel = await deps.directory.channel(route.channelId);
    return {
      delivered: channel ? adapterOf(channel.type)?.servedByStream === true : false,
      tenantId: route.tenantId,
      activityId: activity.id,
      conversationId: activity.conversation_id,
      seq: activity.seq,
      channelId: route.channelId,
      externalId: route.externalId,
      activity,
    };
  }

  async function handleBatch(records: LogRecord[]): Promise<void> {
    const targets = new Map<string, NewDelivery | undefined>();
    for (const record of records) targets.set(record.eventId, await targetOf(record));
    const queued = await inTransaction(deps.pool, async (client) => {
      const fresh = await deps.events.claim(client, DELIVERY_CONSUMER, [...targets.keys()]);
      const due = [...targets].filter(([eventId, target]) => target && fresh.has(eventId)).map(([, t]) => t);
      return deps.deliveries.insertMany(client, due as NewDelivery[]);
    });
    if (queued > 0) deps.onQueued();
  }

  return { handle: (record: LogRecord) => handleBatch([record]), handleBatch };
}
