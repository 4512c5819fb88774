import type { JsonObject } from "@bufbuild/protobuf";
import {
  type AdapterChannel,
  configString,
  type DeliverInput,
  DeliveryError,
  type InboundBatch,
  InboundError,
  type InboundMessage,
  type InboundRequest,
  type InboundStatus,
  parseJsonBody,
} from "./adapter.js";
import { isObject } from "./generic-inbound.js";
import type { OutboundHttp } from "./http-out.js";

/*
 * Helpers of the provider adapters: the Graph API ones (WhatsApp Cloud API,
 * Messenger, Instagram) and those shaped like it (Infobip, Telegram).
 */

export const GRAPH_BASE_URL = "https://graph.facebook.com/v18.0";

// Graph API throttling codes: Meta answers some of them with HTTP 400, yet a later try succeeds.
const GRAPH_THROTTLING_CODES = new Set([4, 17, 32, 613, 80007, 130429, 131048, 131056]);

// ---------------------------------------------------------------- outbound

export interface ProviderAnswer {
  status: number;
  /** The JSON body, or undefined when it is not JSON. */
  body: unknown;
}

/** The configured base_url (else `fallback`) with the given path segments, each percent-encoded. */
export function providerUrl(channel: AdapterChannel, fallback: string | undefined, segments: string[]): string {
  const configured = channel.config.base_url;
  const base =
    typeof configured === "string" && configured ? configured : (fallback ?? configString(channel, "base_url"));
  return `${base.replace(/\/+$/, "")}/${segments.map(encodeURIComponent).join("/")}`;
}

/** The text of an outgoing message, or undefined when there is nothing to send (events, typing, blank text). */
export function textToSend(input: DeliverInput): string | undefined {
  const { activity } = input;
  if (activity.type !== "message" || typeof activity.text !== "string" || !activity.text.trim()) return undefined;
  return activity.text;
}

/** The provider's user the conversation is with; without one nothing can ever be sent. */
export function recipientOf(input: DeliverInput, provider: string): string {
  if (!input.externalId) throw new DeliveryError(`conversation has no ${provider} recipient`, true);
  return input.externalId;
}

export async function postJson(
  http: OutboundHttp,
  url: string,
  headers: Record<string, string>,
  payload: unknown,
): Promise<ProviderAnswer> {
  const res = await http.request(url, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(payload),
  });
  return { status: res.status, body: parseJson(res.text) };
}

export function isSuccess(status: number): boolean {
  return status >= 200 && status <= 299;
}

/**
 * A failed try: a 4xx other than 429 is the provider rejecting this request,
 * which a retry repeats; 3xx (redirects are not followed), 429 and 5xx may pass later.
 */
export function failedTry(
  provider: string,
  status: number,
  detail: string | undefined,
  transient = false,
): DeliveryError {
  const where = status >= 300 && status < 400 ? " (redirects are not followed)" : "";
  const permanent = status >= 400 && status < 500 && status !== 429 && !transient;
  return new DeliveryError(`${provider} answered HTTP ${status}${where}${detail ? `: ${detail}` : ""}`, permanent);
}

/** POSTs to a Graph API `/{id}/messages` edge and returns the 2xx body; a non-2xx becomes its DeliveryError. */
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

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A string config value, or "" when it is not set. */
export function optionalConfig(channel: AdapterChannel, name: string): string {
  const value = channel.config[name];
  return typeof value === "string" ? value : "";
}

// ---------------------------------------------------------------- inbound readers

const MAX_ID = 200;

export function objectField(value: unknown, name: string): Record<string, unknown> {
  if (!isObject(value)) throw new InboundError(`${name}: must be an object`);
  return value;
}

/** An array field; absent is empty. */
export function arrayField(value: unknown, name: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InboundError(`${name}: must be an array`);
  return value;
}

export function requiredArray(value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw new InboundError(`${name}: must be an array`);
  return value;
}

export function idField(value: unknown, name: string): string {
  if (typeof value !== "string" || !value.trim() || value.length > MAX_ID) {
    throw new InboundError(`${name}: must be a non-empty string of at most ${MAX_ID} characters`);
  }
  return value;
}

export function stringField(value: unknown, name: string): string {
  if (typeof value !== "string") throw new InboundError(`${name}: must be a string`);
  return value;
}

export function optionalString(value: unknown): string | undefined {
  return typeof value === "string" && value ? value : undefined;
}

// ---------------------------------------------------------------- Messenger Platform webhooks

/**
 * Messenger Platform webhooks (`object` "page" for Messenger, "instagram" for
 * Instagram Messaging): `{object, entry:[{id, time, messaging:[event]}]}`.
 * Entries of another account than `accountId` are skipped: one Meta app may
 * post every page's events to each callback, and a reply would then leave from
 * the wrong account.
 */
export function parseMessagingWebhook(request: InboundRequest, object: string, accountId: string): InboundBatch {
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
