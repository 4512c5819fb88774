import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { type DeliveryService, DeliveryStatus } from "../../gen/converger/v1/delivery_pb.js";
import { tenantOf } from "../common/access/access.js";
import { CLIENT_IP_HEADER, kPrincipal } from "../common/access/context.js";
import type { Bus } from "../common/events/bus.js";
import type { Consumer } from "../common/events/event-log.js";
import { invalidField, notFound } from "../common/rpc/errors.js";
import { pageOf, pageResult } from "../common/rpc/pagination.js";
import { isUuid } from "../common/rpc/validation.js";
import type { DeliveryOpsRpc } from "./handlers-ops.js";
import { type InboundDeps, inboundChannel, receiveInbound } from "./inbound.js";
import { deadLetterMessage, deliveryMessage, publishDelivery, statusName } from "./rows.js";
import type { CircuitStore } from "./store/circuits.js";
import type { DeliveryStore } from "./store/deliveries.js";
import type { ConsumerEventStore } from "./store/events.js";

export interface DeliveryRoutesDeps extends InboundDeps {
  deliveries: DeliveryStore;
  circuits: CircuitStore;
  events: ConsumerEventStore;
  bus: Bus;
  /** The log consumers by name, for replaying their dead letters. */
  consumers: Map<string, Consumer>;
  wakeWorker: () => void;
}

export function deliveryImpl(deps: DeliveryRoutesDeps): Omit<ServiceImpl<typeof DeliveryService>, DeliveryOpsRpc> {
  return {
    async listDeliveries(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const page = pageOf(req);
      const status = req.status === DeliveryStatus.UNSPECIFIED ? undefined : statusName(req.status);
      // A filter left out matches every delivery.
      const filter = {
        ...(status === undefined ? {} : { status }),
        ...(req.channelId ? { channelId: req.channelId } : {}),
      };
      const rows = await deps.deliveries.list(tenantId, filter, page);
      const { items, nextCursor } = pageResult(rows, page);
      return { deliveries: items.map(deliveryMessage), nextCursor };
    },
    async listActivityDeliveries(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const rows = await deps.deliveries.listForActivity(tenantId, req.activityId);
      // No deliveries (none due, or not yet queued) or no activity of this tenant: only its owner knows which.
      if (rows.length === 0 && (await deps.directory.activityTenant(req.activityId)) !== tenantId) {
        throw notFound("activity");
      }
      return { deliveries: rows.map(deliveryMessage) };
    },
    async getChannelHealth(req) {
      if (!req.channelIds.every(isUuid)) throw invalidField("channel_ids", "must be UUIDs");
      const health = await deps.circuits.health(req.tenantId, req.channelIds);
      const channels = req.channelIds.map((channelId) => {
        const known = health.get(channelId);
        return known === undefined ? { channelId } : { channelId, health: known };
      });
      return { channels };
    },
    async retryDelivery(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const row = await deps.deliveries.retry(tenantId, req.id);
      if (!row) {
        if (await deps.deliveries.get(tenantId, req.id))
          throw new ConnectError("already delivered", Code.FailedPrecondition);
        throw notFound("delivery");
      }
      publishDelivery(deps.bus, row);
      deps.wakeWorker();
      return deliveryMessage(row);
    },
    receiveInbound: (req, ctx) => receiveInbound(deps, req, ctx.requestHeader.get(CLIENT_IP_HEADER) ?? ""),
    async answerInboundChallenge(req) {
      const { channel, adapter } = await inboundChannel(deps, req.channelId);
      const challenge = adapter.answerChallenge?.(new URLSearchParams(req.query), channel);
      if (challenge === undefined) throw new ConnectError("verification token does not match", Code.PermissionDenied);
      return { challenge };
    },
    async listProcessingDeadLetters(req) {
      const limit = req.limit > 0 ? req.limit : 50;
      const rows = await deps.events.listDeadLetters(req.all, limit, req.offset);
      return { deadLetters: rows.map(deadLetterMessage) };
    },
    async replayProcessingDeadLetter(req) {
      const letter = await deps.events.getDeadLetter(req.id);
      if (!letter) throw notFound("dead letter");
      const consumer = deps.consumers.get(letter.consumer);
      if (!consumer) throw new ConnectError(`consumer ${letter.consumer} does not run here`, Code.FailedPrecondition);
      await consumer.handle({
        eventId: letter.event_id,
        topic: letter.topic,
        key: letter.key,
        tenantId: letter.tenant_id,
        payload: letter.payload,
      });
      const replayed = await deps.events.markReplayed(letter.id);
      return deadLetterMessage(replayed ?? letter);
    },
  };
}
