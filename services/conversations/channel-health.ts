import { createClient, type Transport } from "@connectrpc/connect";
import type { ChannelHealth } from "../../gen/converger/v1/channels_pb.js";
import { DeliveryService } from "../../gen/converger/v1/delivery_pb.js";
import { internalHeaders } from "../common/access/internal.js";
import type { Logger } from "../common/obs/logger.js";

// A channel read waits this long for its health at most, then answers without it.
const HEALTH_TIMEOUT_MS = 1_000;
// Every channel read would say it again while delivery is away.
const WARN_EVERY_MS = 60_000;

/**
 * Channels' health as the delivery service's circuits see it (design.md §7).
 * The circuits are delivery's, so they are asked for, never read; a delivery
 * service that does not answer leaves health unspecified instead of failing
 * the read.
 */
export function createChannelHealth(transport: Transport, internalToken: string, log: Logger) {
  const delivery = createClient(DeliveryService, transport);
  const headers = internalHeaders(internalToken);
  let warnedAt = 0;
  return async (tenantId: string, channelIds: string[]): Promise<Map<string, ChannelHealth>> => {
    try {
      const res = await delivery.getChannelHealth({ tenantId, channelIds }, { headers, timeoutMs: HEALTH_TIMEOUT_MS });
      return new Map(res.channels.map((c) => [c.channelId, c.health]));
    } catch (error) {
      if (Date.now() - warnedAt > WARN_EVERY_MS) {
        warnedAt = Date.now();
        log.warn({ err: error }, "channel health unavailable from the delivery service; reads omit it");
      }
      return new Map();
    }
  };
}
