import type { JsonObject } from "@bufbuild/protobuf";
import { ActivitySchema } from "../../gen/converger/v1/conversations_pb.js";
import { adapterOf } from "../channel-adapters/index.js";
import { inTransaction, type Pool } from "../common/db/pool.js";
import { readEnvelope } from "../common/events/envelopes.js";
import type { LogRecord } from "../common/events/event-log.js";
import { toApiJson } from "../common/rpc/json.js";
import type { DeliveryDirectory } from "./directory.js";
import type { DeliveryStore, NewDelivery } from "./store/deliveries.js";
import type { ConsumerEventStore } from "./store/events.js";

export { ACTIVITIES_TOPIC } from "../common/events/envelopes.js";
export const DELIVERY_CONSUMER = "delivery";

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
    const envelope = readEnvelope(record);
    if (envelope?.$typeName !== "converger.v1.ActivityCreated" || !envelope.activity) return undefined;
    const { activity } = envelope;
    const route = await deps.directory.route(activity.conversationId);
    if (!route) throw new Error(`conversation ${activity.conversationId} is unknown to the directory`);
    if (activity.originChannelId === route.channelId) return undefined;
    const channel = await deps.directory.channel(route.channelId);
    return {
      delivered: channel ? adapterOf(channel.type)?.servedByStream === true : false,
      tenantId: route.tenantId,
      activityId: activity.id,
      conversationId: activity.conversationId,
      seq: activity.seq.toString(),
      channelId: route.channelId,
      externalId: route.externalId,
      // The same JSON the envelope carried: the public JSON of the activity.
      activity: toApiJson(ActivitySchema, activity) as JsonObject,
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
