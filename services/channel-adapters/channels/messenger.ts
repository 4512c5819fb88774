import { type ChannelAdapter, configString, PACING_CONFIG } from "../adapter.js";
import { isObject } from "../generic-inbound.js";
import {
  optionalConfig,
  optionalString,
  parseMessagingWebhook,
  recipientOf,
  sendGraphMessage,
  textToSend,
} from "../provider-http.js";

const PROVIDER = "Messenger";

/** Messenger Platform Send API: `/{page_id}/messages` out; page messaging webhooks (messages, deliveries) in. */
export const messenger: ChannelAdapter = {
  type: "messenger",
  config: {
    page_id: { kind: "string", required: true },
    page_access_token: { kind: "string", required: true, secret: true },
    app_secret: { kind: "string", secret: true },
    base_url: { kind: "url" },

    ...PACING_CONFIG,
  },
  async deliver(input) {
    const text = textToSend(input);
    if (text === undefined) return {};
    const recipient = recipientOf(input, PROVIDER);
    const { channel } = input;
    // The token goes in a header rather than Meta's ?access_token= so it stays out of URLs and their logs.
    const body = await sendGraphMessage(
      input,
      PROVIDER,
      configString(channel, "page_id"),
      configString(channel, "page_access_token"),
      { recipient: { id: recipient }, messaging_type: "RESPONSE", message: { text } },
    );
    return { providerMessageId: isObject(body) ? optionalString(body.message_id) : undefined };
  },
  parseInbound: (request, channel) => parseMessagingWebhook(request, "page", optionalConfig(channel, "page_id")),
  inboundSigningKey: (channel) => optionalConfig(channel, "app_secret") || channel.secret,
};
