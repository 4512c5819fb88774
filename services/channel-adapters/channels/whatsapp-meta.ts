import { createHash, timingSafeEqual } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import {
  type AdapterChannel,
  type ChannelAdapter,
  configString,
  type InboundBatch,
  InboundError,
  type InboundMessage,
  type InboundRequest,
  type InboundStatus,
  PACING_CONFIG,
  parseJsonBody,
} from "../adapter.js";
import { isObject } from "../generic-inbound.js";
import { sendGraphMessage } from "../graph.js";
import {
  arrayField,
  idField,
  objectField,
  optionalConfig,
  optionalString,
  recipientOf,
  requiredArray,
  stringField,
  textToSend,
} from "../provider-http.js";

const PROVIDER = "WhatsApp";
const STATUSES: readonly InboundStatus["status"][] = ["sent", "delivered", "read", "failed"];

/** WhatsApp Business Cloud API (Graph API v18.0): text messages out, messages and statuses in. */
export const whatsappMeta: ChannelAdapter = {
  type: "whatsapp_meta",
  config: {
    phone_number_id: { kind: "string", required: true },
    access_token: { kind: "string", required: true, secret: true },
    verify_token: { kind: "string", required: true, secret: true },
    app_secret: { kind: "string", required: true, secret: true },
    base_url: { kind: "url" },

    ...PACING_CONFIG,
  },
  async deliver(input) {
    const text = textToSend(input);
    if (text === undefined) return {};
    const to = recipientOf(input, PROVIDER);
    const { channel } = input;
    const body = await sendGraphMessage(
      input,
      PROVIDER,
      configString(channel, "phone_number_id"),
      configString(channel, "access_token"),
      {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to,
        type: "text",
        text: { preview_url: false, body: text },
      },
    );
    const providerMessageId = sentMessageId(body);
    return providerMessageId === undefined ? {} : { providerMessageId };
  },
  parseInbound: parseWhatsAppWebhook,
  inboundSigningKey: (channel) => optionalConfig(channel, "app_secret"),
  answerChallenge(query, channel) {
    const expected = optionalConfig(channel, "verify_token");
    const challenge = query.get("hub.challenge");
    if (query.get("hub.mode") !== "subscribe" || !expected || !challenge) return undefined;
    return sameSecret(query.get("hub.verify_token") ?? "", expected) ? challenge : undefined;
  },
};

/** `messages[0].id` (a wamid) of a send answer; a 2xx without one was still sent, just not trackable. */
function sentMessageId(body: unknown): string | undefined {
  if (!isObject(body) || !Array.isArray(body.messages)) return undefined;
  const first: unknown = body.messages[0];
  return isObject(first) ? optionalString(first.id) : undefined;
}

/** Compares in constant time; hashing first hides the length too. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * `{object:"whatsapp_business_account", entry:[{id, changes:[{field:"messages", value}]}]}`.
 * Other fields (template and account updates) carry no messages; changes of
 * another phone number are skipped, since one app's webhook receives all of them.
 */
function parseWhatsAppWebhook(request: InboundRequest, channel: AdapterChannel): InboundBatch {
  const body = objectField(parseJsonBody(request), "body");
  if (body.object !== "whatsapp_business_account")
    throw new InboundError('object: must be "whatsapp_business_account"');
  const phoneNumberId = optionalConfig(channel, "phone_number_id");
  const batch: InboundBatch = { messages: [], statuses: [] };
  requiredArray(body.entry, "entry").forEach((rawEntry, i) => {
    const entry = objectField(rawEntry, `entry[${i}]`);
    requiredArray(entry.changes, `entry[${i}].changes`).forEach((rawChange, j) => {
      const where = `entry[${i}].changes[${j}]`;
      const change = objectField(rawChange, where);
      if (stringField(change.field, `${where}.field`) !== "messages") return;
      const value = objectField(change.value, `${where}.value`);
      const metadata = objectField(value.metadata, `${where}.value.metadata`);
      if (idField(metadata.phone_number_id, `${where}.value.metadata.phone_number_id`) !== phoneNumberId) return;
      readChangeValue(value, `${where}.value`, batch);
    });
  });
  return batch;
}

function readChangeValue(value: Record<string, unknown>, where: string, batch: InboundBatch): void {
  const names = contactNames(arrayField(value.contacts, `${where}.contacts`), `${where}.contacts`);
  arrayField(value.messages, `${where}.messages`).forEach((raw, k) => {
    batch.messages.push(readMessage(objectField(raw, `${where}.messages[${k}]`), `${where}.messages[${k}]`, names));
  });
  arrayField(value.statuses, `${where}.statuses`).forEach((raw, k) => {
    const status = readStatus(objectField(raw, `${where}.statuses[${k}]`), `${where}.statuses[${k}]`);
    if (status) batch.statuses.push(status);
  });
}

/** wa_id → profile name. */
function contactNames(contacts: unknown[], where: string): Map<string, string> {
  const names = new Map<string, string>();
  contacts.forEach((raw, k) => {
    const contact = objectField(raw, `${where}[${k}]`);
    const name = isObject(contact.profile) ? optionalString(contact.profile.name) : undefined;
    if (name) names.set(idField(contact.wa_id, `${where}[${k}].wa_id`), name);
  });
  return names;
}

function readMessage(message: Record<string, unknown>, where: string, names: Map<string, string>): InboundMessage {
  const waId = idField(message.from, `${where}.from`);
  const type = stringField(message.type, `${where}.type`);
  const name = names.get(waId);
  const base = {
    externalId: waId,
    messageId: idField(message.id, `${where}.id`),
    from: { id: waId, ...(name === undefined ? {} : { name }) },
  };
  if (type === "text") {
    const text = objectField(message.text, `${where}.text`);
    return { ...base, type: "message", text: stringField(text.body, `${where}.text.body`) };
  }
  const content = message[type];
  const metadata: JsonObject = { whatsapp_type: type };
  if (isObject(content)) metadata[type] = content as JsonObject;
  return { ...base, type: "message", text: "", metadata };
}

/** A status report, or undefined for a status value Converger does not track (e.g. the deprecated "deleted"). */
function readStatus(status: Record<string, unknown>, where: string): InboundStatus | undefined {
  const value = stringField(status.status, `${where}.status`);
  const providerMessageId = idField(status.id, `${where}.id`);
  if (!isTracked(value)) return undefined;
  const error = value === "failed" ? statusError(arrayField(status.errors, `${where}.errors`)) : undefined;
  return { providerMessageId, status: value, ...(error ? { error } : {}) };
}

function isTracked(value: string): value is InboundStatus["status"] {
  return (STATUSES as readonly string[]).includes(value);
}

/** `errors[0]` as "message (code N)". */
function statusError(errors: unknown[]): string | undefined {
  const first = errors[0];
  if (!isObject(first)) return undefined;
  const text = optionalString(first.message) ?? optionalString(first.title) ?? "failed";
  return typeof first.code === "number" ? `${text} (code ${first.code})` : text;
}
