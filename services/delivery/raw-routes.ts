import { createClient, type Transport } from "@connectrpc/connect";
import { DeliveryService } from "../../gen/converger/v1/delivery_pb.js";
import { CLIENT_IP_HEADER } from "../common/access/context.js";
import { readBody, writeJson } from "../common/rpc/http-io.js";
import type { RawRoute } from "../common/service.js";

// Provider webhooks are small JSON documents; WhatsApp batches stay far below this.
const INBOUND_BODY_LIMIT = 1024 * 1024;
// What the signature and the adapters may look at; nothing else is forwarded.
const FORWARDED_HEADERS = ["x-hub-signature-256", "content-type", "user-agent"];

/**
 * POST/GET /v1/channels/{id}/inbound (and the /api/v1 alias) as raw routes:
 * the signature covers the exact bytes, so the body goes to the delivery
 * service untouched instead of through the JSON transcoder.
 */
export function deliveryRawRoutes(transport: Transport): RawRoute[] {
  const delivery = createClient(DeliveryService, transport);
  return ["/v1/channels/{id}/inbound", "/api/v1/channels/{id}/inbound"].flatMap((path): RawRoute[] => [
    {
      method: "POST",
      path,
      bodyLimitBytes: INBOUND_BODY_LIMIT,
      async handle({ req, res, params, requestId, clientIp }) {
        const body = await readBody(req, INBOUND_BODY_LIMIT);
        const headers: Record<string, string> = {};
        for (const name of FORWARDED_HEADERS) {
          const value = req.headers[name];
          if (typeof value === "string") headers[name] = value;
        }
        const result = await delivery.receiveInbound(
          { channelId: params.id ?? "", body, headers },
          { headers: { "x-request-id": requestId, [CLIENT_IP_HEADER]: clientIp } },
        );
        writeJson(res, 200, {
          received: result.activityIds.length,
          duplicates: result.duplicates,
          statuses: result.statuses,
          activity_ids: result.activityIds,
        });
      },
    },
    {
      method: "GET",
      path,
      bodyLimitBytes: 0,
      async handle({ req, res, params, requestId }) {
        const query = new URL(req.url ?? "/", "http://gateway").search.slice(1);
        const { challenge } = await delivery.answerInboundChallenge(
          { channelId: params.id ?? "", query },
          { headers: { "x-request-id": requestId } },
        );
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
        res.end(challenge);
      },
    },
  ]);
}
