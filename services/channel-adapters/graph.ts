import type { JsonObject } from "@bufbuild/protobuf";
import {
  type ChannelAdapter,
  type ConfigSpec,
  configString,
  type DeliverInput,
  type InboundBatch,
  InboundError,
  type InboundMessage,
  type InboundRequest,
  type InboundStatus,
  parseJsonBody,
} from "./adapter.js";
import { isObject } from "./generic-inbound.js";
import {
  arrayField,
  failedTry,
  idField,
  isSuccess,
  objectField,
  optionalConfig,
  optionalString,
  postJson,
  providerUrl,
  recipientOf,
  requiredArray,
  stringField,
  textToSend,
} from "./provider-http.js";

// The one Graph API client of the Meta channels (WhatsApp Cloud API, Messenger, Instagram).

const GRAPH_BASE_URL = "https://graph.facebook.com/v18.0";

// Graph API throttling codes: Meta answers some of them with HTTP 400, yet a later try succeeds.
const GRAPH_THROTTLING_CODES = new Set([4, 17, 32, 613, 80007, 130429, 131048, 131056]);

/**
 * POSTs to a Graph API `/{id}/messages` edge and returns the 2xx body; a
 * non-2xx becomes its DeliveryError. The token goes in a header rather than
 * Meta's ?access_token= so that it stays out of URLs and their logs.
 */
export async function sendGraphMessage(
  input: DeliverInput,
  provider: string,
  accountId: string,
  accessToken: string,
  payload: JsonObject,
): Promise<unknown> {
  const url = providerUrl(input.channel, GRAPH_BASE_URL, [accountId, "messages"]);
  const answer = await postJson(input.http, url, { authorization: `Bearer ${accessToken}` }, payload);
  if (isSuccess(answer.status)) return answer.body;
  const error = graphError(answer.body);
  throw failedTry(provider, answer.status, error?.detail, error?.transient);
}

/** Meta's `{error:{message,code,is_transient}}`. */
function graphError(body: unknown): { detail: string; transient: boolean } | undefined {
  if (!isObject(body) || !isObject(body.error)) return undefined;
  const { message, code, is_transient } = body.error;
  const text = typeof message === "string" ? message : "error";
  const hasCode = typeof code === "number";
  return {
    detail: hasCode ? `${text} (code ${code})` : text,
    transient: is_transient === true || (hasCode && GRAPH_THROTTLING_CODES.has(code)),
  };
}

/** What tells one Messenger Platform channel type from another (Messenger, Instagram Messaging). */
interface MessagingPlatform {
  type: string;
  /** The provider's name in delivery errors. */
  provider: string;
  /** The webhooks' `object`. */
  object: string;
  /** The config fields naming the sending account and its token. */
  accountField: string;
  tokenField: string;
  config: ConfigSpec;
  /** Fields every send carries besides recipient and message. */
  sendFields?: JsonObject;
  inboundSigningKey?: ChannelAdapter["inboundSigningKey"];
}

/** A Messenger Platform channel: `/{account}/messages` out; messaging webhooks in. */
export function messagingPlatformAdapter(platform: MessagingPlatform): ChannelAdapter {
  const { provider, accountField, tokenField } = platform;
  return {
    type: platform.type,
    config: platform.config,
    async deliver(input) {
      const text = textToSend(input);
      if (text === undefined) return {};
      const recipient = recipientOf(input, provider);
      const { channel } = input;
      const body = await sendGraphMessage(
        input,
        provider,
        configString(channel, accountField),
        configString(channel, tokenField),
        { recipient: { id: recipient }, ...platform.sendFields, message: { text } },
      );
      const providerMessageId = isObject(body) ? optionalString(body.message_id) : undefined;
      return providerMessageId === undefined ? {} : { providerMessageId };
    },
    parseInbound: (request, channel) =>
      parseMessagingWebhook(request, platform.object, optionalConfig(channel, accountField)),
    ...(platform.inboundSigningKey ? { inboundSigningKey: platform.inboundSigningKey } : {}),
  };
}

/**
 * Messenger Platform webhooks (`object` "page" for Messenger, "instagram" for
 * Instagram Messaging): `{object, entry:[{id, time, messaging:[event]}]}`.
 * Entries of another account than `accountId` are skipped: one Meta app may
 * post every page's events to each callback, and a reply would then leave from
 * the wrong account.
 */
function parseMessagingWebhook(request: InboundRequest, object: string, accountId: string): InboundBatch {
  const body = objectField(parseJsonBody(request), "body");
  if (body.object !== object) throw new InboundError(`object: must be "${object}"`);
  const batch: InboundBatch = { messages: [], statuses: [] };
  requiredArray(body.entry, "entry").forEach((raw, i) => {
    const entry = objectField(raw, `entry[${i}]`);
    if (idField(entry.id, `entry[${i}].id`) !== accountId) return;
    arrayField(entry.messaging, `entry[${i}].messaging`).forEach((event, j) => {
      readMessagingEvent(objectField(event, `entry[${i}].messaging[${j}]`), `entry[${i}].messaging[${j}]`, batch);
    });
  });
  return batch;
}

function readMessagingEvent(event: Record<string, unknown>, where: string, batch: InboundBatch): void {
  if (event.message !== undefined) {
    const message = readMessagingMessage(event, where);
    if (message) batch.messages.push(message);
  } else if (event.delivery !== undefined) {
    batch.statuses.push(...readDelivery(event.delivery, `${where}.delivery`));
  } else if (event.read !== undefined) {
    const read = objectField(event.read, `${where}.read`);
    // Messenger reads carry only a watermark (no message ids to match); Instagram's name the message.
    if (read.mid !== undefined)
      batch.statuses.push({ providerMessageId: idField(read.mid, `${where}.read.mid`), status: "read" });
  }
  // Postbacks, reactions, referrals, opt-ins… are not conversation messages.
}

function readMessagingMessage(event: Record<string, unknown>, where: string): InboundMessage | undefined {
  const message = objectField(event.message, `${where}.message`);
  // Echoes are the account's own sends (ours included): taking them in would loop.
  if (message.is_echo === true || message.is_deleted === true) return undefined;
  const sender = objectField(event.sender, `${where}.sender`);
  const senderId = idField(sender.id, `${where}.sender.id`);
  const attachments = arrayField(message.attachments, `${where}.message.attachments`);
  if (!attachments.every(isObject)) throw new InboundError(`${where}.message.attachments: must be objects`);
  const text = message.text === undefined ? "" : stringField(message.text, `${where}.message.text`);
  return {
    externalId: senderId,
    messageId: idField(message.mid, `${where}.message.mid`),
    from: { id: senderId },
    type: "message",
    text,
    ...(attachments.length ? { metadata: { provider_attachments: attachments as JsonObject[] } } : {}),
  };
}

function readDelivery(value: unknown, where: string): InboundStatus[] {
  const delivery = objectField(value, where);
  return arrayField(delivery.mids, `${where}.mids`).map((mid, k) => ({
    providerMessageId: idField(mid, `${where}.mids[${k}]`),
    status: "delivered",
  }));
}
