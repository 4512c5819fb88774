import type { JsonObject } from "@bufbuild/protobuf";
import {
  type ChannelAdapter,
  configString,
  DeliveryError,
  type InboundBatch,
  InboundError,
  type InboundMessage,
  type InboundRequest,
  type InboundStatus,
  PACING_CONFIG,
  parseJsonBody,
} from "../adapter.js";
import { isObject } from "../generic-inbound.js";
import {
  failedTry,
  idField,
  isSuccess,
  objectField,
  optionalString,
  postJson,
  providerUrl,
  recipientOf,
  requiredArray,
  stringField,
  textToSend,
} from "../provider-http.js";

const PROVIDER = "Infobip";
const FAILED_GROUPS: ReadonlySet<string> = new Set(["UNDELIVERABLE", "REJECTED", "EXPIRED"]);

/** WhatsApp through Infobip: `/whatsapp/1/message/text` out; inbound messages and delivery/seen reports in. */
export const whatsappInfobip: ChannelAdapter = {
  type: "whatsapp_infobip",
  config: {
    base_url: { kind: "url", required: true },
    api_key: { kind: "string", required: true, secret: true },
    sender: { kind: "string", required: true },

    ...PACING_CONFIG,
  },
  async deliver(input) {
    const text = textToSend(input);
    if (text === undefined) return {};
    const to = recipientOf(input, "WhatsApp");
    const { channel, deliveryId } = input;
    const answer = await postJson(
      input.http,
      providerUrl(channel, undefined, ["whatsapp", "1", "message", "text"]),
      { authorization: `App ${configString(channel, "api_key")}` },
      { from: configString(channel, "sender"), to, messageId: deliveryId, content: { text } },
    );
    if (!isSuccess(answer.status)) throw failedTry(PROVIDER, answer.status, infobipError(answer.body));
    const providerMessageId = acceptedMessageId(answer.body);
    return providerMessageId === undefined ? {} : { providerMessageId };
  },
  parseInbound: parseInfobipWebhook,
};

/** `messageId` of a send answer; a REJECTED status there is a refusal even on 2xx. */
function acceptedMessageId(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  const status = isObject(body.status) ? body.status : {};
  if (status.groupName === "REJECTED") {
    const reason = optionalString(status.description) ?? optionalString(status.name) ?? "rejected";
    throw new DeliveryError(`${PROVIDER} rejected the message: ${reason}`, true);
  }
  return optionalString(body.messageId);
}

/** `{requestError:{serviceException:{messageId,text}}}`, or the newer `{errorCode,description}`. */
function infobipError(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  const exception = isObject(body.requestError) ? body.requestError.serviceException : undefined;
  if (isObject(exception)) {
    const text = optionalString(exception.text) ?? "error";
    const id = optionalString(exception.messageId);
    return id ? `${text} (${id})` : text;
  }
  return optionalString(body.description);
}

/** `{results:[...]}`: each result is an inbound message (it has `message`) or a delivery/seen report. */
function parseInfobipWebhook(request: InboundRequest): InboundBatch {
  const body = objectField(parseJsonBody(request), "body");
  const batch: InboundBatch = { messages: [], statuses: [] };
  requiredArray(body.results, "results").forEach((raw, i) => {
    const where = `results[${i}]`;
    const result = objectField(raw, where);
    if (result.message !== undefined) batch.messages.push(readMessage(result, where));
    else if (result.status !== undefined || result.seenAt !== undefined) {
      const status = readReport(result, where);
      if (status) batch.statuses.push(status);
    } else throw new InboundError(`${where}: neither a message nor a delivery report`);
  });
  return batch;
}

function readMessage(result: Record<string, unknown>, where: string): InboundMessage {
  const from = idField(result.from, `${where}.from`);
  const message = objectField(result.message, `${where}.message`);
  const type = stringField(message.type, `${where}.message.type`);
  const name = isObject(result.contact) ? optionalString(result.contact.name) : undefined;
  const base = {
    externalId: from,
    messageId: idField(result.messageId, `${where}.messageId`),
    from: { id: from, ...(name === undefined ? {} : { name }) },
  };
  if (type === "TEXT") return { ...base, type: "message", text: stringField(message.text, `${where}.message.text`) };
  return {
    ...base,
    type: "message",
    text: "",
    metadata: { whatsapp_type: type.toLowerCase(), message: message as JsonObject },
  };
}

/**
 * A seen report (seenAt) is a read; a delivery report maps its status group.
 * Unknown groups are skipped rather than refused, so one new value does not
 * make Infobip resend the whole batch forever.
 */
function readReport(result: Record<string, unknown>, where: string): InboundStatus | undefined {
  const providerMessageId = idField(result.messageId, `${where}.messageId`);
  if (result.seenAt !== undefined) return { providerMessageId, status: "read" };
  const status = objectField(result.status, `${where}.status`);
  const group = stringField(status.groupName, `${where}.status.groupName`);
  if (group === "DELIVERED") return { providerMessageId, status: "delivered" };
  if (group === "PENDING") return { providerMessageId, status: "sent" };
  if (!FAILED_GROUPS.has(group)) return undefined;
  const error = optionalString(status.description) ?? optionalString(status.name) ?? group;
  return { providerMessageId, status: "failed", error };
}
