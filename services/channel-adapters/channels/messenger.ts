import { PACING_CONFIG } from "../adapter.js";
import { messagingPlatformAdapter } from "../graph.js";
import { optionalConfig } from "../provider-http.js";

/** Messenger Platform Send API: `/{page_id}/messages` out; page messaging webhooks (messages, deliveries) in. */
export const messenger = messagingPlatformAdapter({
  type: "messenger",
  provider: "Messenger",
  object: "page",
  accountField: "page_id",
  tokenField: "page_access_token",
  config: {
    page_id: { kind: "string", required: true },
    page_access_token: { kind: "string", required: true, secret: true },
    app_secret: { kind: "string", secret: true },
    base_url: { kind: "url" },
    ...PACING_CONFIG,
  },
  sendFields: { messaging_type: "RESPONSE" },
  inboundSigningKey: (channel) => optionalConfig(channel, "app_secret") || channel.secret,
});
