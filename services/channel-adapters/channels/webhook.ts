import { type ChannelAdapter, configString, DeliveryError, PACING_CONFIG } from "../adapter.js";
import { parseGenericInbound } from "../generic-inbound.js";
import { convergerSignature } from "../signature.js";

/**
 * POSTs `{delivery_id,event,activity}` to the configured URL, signed with the
 * channel secret; any 2xx is delivered, everything else (3xx included: redirects
 * are not followed) is a failed try.
 */
export const webhook: ChannelAdapter = {
  type: "webhook",
  config: {
    url: { kind: "url", required: true },
    headers: { kind: "headers" },
    method: { kind: "method" },
    ...PACING_CONFIG,
  },
  async deliver({ deliveryId, activity, channel, http }) {
    const body = JSON.stringify({ delivery_id: deliveryId, event: "activity", activity });
    const configured = (channel.config.headers ?? {}) as Record<string, string>;
    const res = await http.request(configString(channel, "url"), {
      method: typeof channel.config.method === "string" ? channel.config.method : "POST",
      headers: {
        ...configured,
        "content-type": "application/json",
        "user-agent": "Converger-Webhook/1",
        "x-converger-delivery": deliveryId,
        "x-converger-signature": convergerSignature(body, channel.secret, Math.floor(Date.now() / 1000)),
      },
      body,
    });
    if (res.status < 200 || res.status > 299) {
      const where = res.status >= 300 && res.status < 400 ? " (redirects are not followed)" : "";
      throw new DeliveryError(`HTTP ${res.status}${where}`);
    }
    return {};
  },
  parseInbound: parseGenericInbound,
};
