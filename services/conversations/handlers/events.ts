import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { EventCreatedSchema } from "../../../gen/converger/v1/envelopes_pb.js";
import type { EventsService } from "../../../gen/converger/v1/events_pb.js";
import { EventCreatedFrameSchema } from "../../../gen/converger/v1/frames_pb.js";
import { tenantOf } from "../../common/access/access.js";
import { kPrincipal } from "../../common/access/context.js";
import { type Bus, tenantTopic } from "../../common/events/bus.js";
import { envelopePayload } from "../../common/events/envelopes.js";
import { pageOf, pageResult } from "../../common/rpc/pagination.js";
import type { EventStore } from "../store/events.js";
import { eventMessage } from "../store/rows.js";

export interface EventsDeps {
  events: EventStore;
  bus: Bus;
  onOutboxWrite: () => void;
}

export function eventsImpl(deps: EventsDeps): ServiceImpl<typeof EventsService> {
  return {
    async createEvent(req, ctx) {
      const principal = ctx.values.get(kPrincipal);
      const tenantId = principal.kind === "internal" ? req.tenantId.toLowerCase() : tenantOf(principal);
      if (req.tenantId.toLowerCase() !== tenantId) {
        throw new ConnectError("X-Tenant-ID does not match the credential's tenant", Code.PermissionDenied);
      }
      const row = await deps.events.create(tenantId, req.message, (r) =>
        envelopePayload(create(EventCreatedSchema, { event: eventMessage(r) })),
      );
      const event = eventMessage(row);
      deps.bus.publish(tenantTopic(tenantId), create(EventCreatedFrameSchema, { event }));
      deps.onOutboxWrite();
      return event;
    },
    async listEvents(req, ctx) {
      const page = pageOf(req);
      const rows = await deps.events.list(tenantOf(ctx.values.get(kPrincipal)), page);
      const { items, nextCursor } = pageResult(rows, page);
      return { events: items.map(eventMessage), nextCursor };
    },
  };
}
