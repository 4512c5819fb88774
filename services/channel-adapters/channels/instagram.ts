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

const PROVIDER = "Instagram";

/** Instagram Messaging (Graph API): `/{instagram_account_id}/messages` out; messaging webhooks in. */
export const instagram: ChannelAdapter = {
  type: "instagram",
  config: {
    instagram_account_id: { kind: "string", required: true },
    access_token: { kind: "string", required: true, secret: true },
    base_url: { kind: "url" },

    ...PACING_CONFIG,
  },
  async deliver(input) {
    const text = textToSend(input);
    if (text === undefined) return {};
    const recipient = recipientOf(input, PROVIDER);
    const { channel } = input;
    const body = await sendGraphMessage(
      input,
      PROVIDER,
      configString(channel, "instagram_account_id"),
      configString(channel, "access_token"),
      { recipient: { id: recipient }, message: { text } },
    );
    return { providerMessageId: isObject(body) ? optionalString(body.message_id) : undefined };
  },
  parseInbound: (request, channel) =>
    parseMessagingWebhook(request, "instagram", optionalConfig(channel, "instagram_account_id")),
};
