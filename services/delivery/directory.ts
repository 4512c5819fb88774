import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import type { AdapterChannel } from "../channels/adapter.js";
import type { Bus } from "../common/bus.js";
import { DIRECTORY_TOPIC } from "../common/directory-client.js";
import { internalHeaders } from "../common/internal.js";

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
  const channels = new Map<string, { value: ChannelInfo | undefined; expires: number }>();
  const routes = new Map<string, { value: ConversationRouteInfo | undefined; expires: number }>();
  bus.subscribe(DIRECTORY_TOPIC, () => channels.clear());

  function remember<T>(map: Map<string, { value: T; expires: number }>, key: string, value: T, ttl: number) {
    if (map.size >= MAX_ENTRIES) map.clear();
    map.set(key, { value, expires: Date.now() + ttl });
    return value;
  }

  return {
    client,
    headers,
    async channel(channelId: string): Promise<ChannelInfo | undefined> {
      const hit = channels.get(channelId);
      if (hit && hit.expires > Date.now()) return hit.value;
      const record = await client.getChannelRecord({ channelId }, { headers });
      const value = record.found
        ? {
            id: record.id,
            tenantId: record.tenantId,
            type: record.type,
            config: record.config ?? {},
            secret: record.secret,
            active: record.channelActive,
            tenantActive: record.tenantActive,
          }
        : undefined;
      return remember(channels, channelId, value, CHANNEL_TTL_MS);
    },
    async route(conversationId: string): Promise<ConversationRouteInfo | undefined> {
      const hit = routes.get(conversationId);
      if (hit && hit.expires > Date.now()) return hit.value;
      const route = await client.getConversationRoute({ conversationId }, { headers });
      if (!route.found) return undefined; // not cached: it may be a conversation committed a moment ago
      const value = { tenantId: route.tenantId, channelId: route.channelId, externalId: route.externalId || null };
      return remember(routes, conversationId, value, ROUTE_TTL_MS);
    },
  };
}

export type DeliveryDirectory = ReturnType<typeof createDeliveryDirectory>;
