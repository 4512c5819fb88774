import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Delivery, DeliveryStatus, type ProcessingDeadLetter } from "../../gen/converger/v1/delivery_pb.js";
import { DeliveryFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import { type Bus, conversationTopic } from "../common/events/bus.js";
import type { DeliveryRow, DeliveryStatusName } from "./store/deliveries.js";
import type { DeadLetterRow } from "./store/events.js";

const STATUS: Record<DeliveryStatusName, DeliveryStatus> = {
  pending: DeliveryStatus.PENDING,
  delivered: DeliveryStatus.DELIVERED,
  failed: DeliveryStatus.FAILED,
};

export function statusName(status: DeliveryStatus): DeliveryStatusName | undefined {
  return (Object.keys(STATUS) as DeliveryStatusName[]).find((name) => STATUS[name] === status);
}

export function deliveryMessage(row: DeliveryRow): Delivery {
  return {
    $typeName: "converger.v1.Delivery",
    id: row.id,
    activityId: row.activity_id,
    channelId: row.channel_id,
    status: STATUS[row.status],
    attempts: row.attempts,
    lastError: row.last_error ?? undefined,
    nextAttemptAt: row.next_attempt_at ? timestampFromDate(row.next_attempt_at) : undefined,
    deliveredAt: row.delivered_at ? timestampFromDate(row.delivered_at) : undefined,
    createdAt: timestampFromDate(row.created_at),
    updatedAt: timestampFromDate(row.updated_at),
  };
}

export function deadLetterMessage(row: DeadLetterRow): ProcessingDeadLetter {
  return {
    $typeName: "converger.v1.ProcessingDeadLetter",
    id: row.id,
    consumer: row.consumer,
    topic: row.topic,
    eventId: row.event_id,
    tenantId: row.tenant_id,
    payload:
      typeof row.payload === "object" && row.payload !== null && !Array.isArray(row.payload)
        ? row.payload
        : { value: row.payload },
    error: row.error,
    attempts: row.attempts,
    createdAt: timestampFromDate(row.created_at),
    replayedAt: row.replayed_at ? timestampFromDate(row.replayed_at) : undefined,
  };
}

/** Streams a delivery's current state to its conversation's subscribers (design.md §4 `delivery` frames). */
export function publishDelivery(bus: Bus, row: DeliveryRow): void {
  bus.publish(
    conversationTopic(row.conversation_id),
    create(DeliveryFrameSchema, { conversationId: row.conversation_id, delivery: deliveryMessage(row) }),
  );
}
