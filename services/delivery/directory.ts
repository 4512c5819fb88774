import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import type { AdapterChannel } from "../channel-adapters/index.js";
import { DIRECTORY_TOPIC } from "../common/access/directory-client.js";
import { internalHeaders } from "../common/access/internal.js";
import type { Bus } from "../common/events/bus.js";
import { createTtlCache } from "../common/ttl-cache.js";

// Channel config may change; another process acts on a stale one for at most this long.
const CHANNEL_TTL_MS = 2_000;
// A conversation's channel and external id never change.
const ROUTE_TTL_MS = 10 * 60_000;
const MAX_ENTRIES = 10_000;

export interface ChannelInfo extends AdapterChannel {
  active: boolean;
  tenantActive: boolean;
}

export interface ConversationRouteInfo {
  tenantId: string;
  channelId: string;
  externalId: string | null;
}

/** The conversations service's directory as the delivery service needs it, with short caches. */
export function createDeliveryDirectory(transport: Transport, internalToken: string, bus: Bus) {
  const client: Client<typeof DirectoryService> = createClient(DirectoryService, transport);
  const headers = internalHeaders(internalToken);
  const channels = createTtlCache<ChannelInfo | undefined>(CHANNEL_TTL_MS, MAX_ENTRIES);
  const routes = createTtlCache<ConversationRouteInfo | undefined>(ROUTE_TTL_MS, MAX_ENTRIES);
  const owners = createTtlCache<string | undefined>(ROUTE_TTL_MS, MAX_ENTRIES);
  bus.subscribe(DIRECTORY_TOPIC, () => channels.clear());

  return {
    client,
    headers,
    channel(channelId: string): Promise<ChannelInfo | undefined> {
      return channels.get(channelId, async () => {
        const record = await client.getChannelRecord({ channelId }, { headers });
        if (!record.found) return undefined;
        return {
          id: record.id,
          tenantId: record.tenantId,
          type: record.type,
          config: record.config ?? {},
          secret: record.secret,
          active: record.channelActive,
          tenantActive: record.tenantActive,
        };
      });
    },
    route(conversationId: string): Promise<ConversationRouteInfo | undefined> {
      return routes.get(
        conversationId,
        async () => {
          const route = await client.getConversationRoute({ conversationId }, { headers });
          if (!route.found) return undefined;
          return { tenantId: route.tenantId, channelId: route.channelId, externalId: route.externalId || null };
        },
        // Not found is not remembered: it may be a conversation committed a moment ago.
        (found) => found !== undefined,
      );
    },
    /** The tenant an activity belongs to (it never changes), or undefined for an unknown id. */
    activityTenant(activityId: string): Promise<string | undefined> {
      return owners.get(
        activityId,
        async () => {
          const owner = await client.getActivityOwner({ activityId }, { headers });
          return owner.found ? owner.tenantId : undefined;
        },
        (found) => found !== undefined,
      );
    },
  };
}

export type DeliveryDirectory = ReturnType<typeof createDeliveryDirectory>;
