import type { JsonObject } from "@bufbuild/protobuf";
import { firstNulPath } from "../common/rpc/nul.js";
import type { OutboundHttp } from "./http-out.js";

/** How a config field is checked (conversations/channel-config.ts). */
export type FieldKind = "string" | "url" | "headers" | "method" | "rate";

interface FieldSpec {
  kind: FieldKind;
  required?: boolean;
  /** Never shown again after it is set: reads answer REDACTED. */
  secret?: boolean;
}

export type ConfigSpec = Record<string, FieldSpec>;

/**
 * Pacing of a sending channel (design.md §7): at most this many tries per
 * second, across every delivery worker. Every sending type takes it.
 */
export const PACING_CONFIG: ConfigSpec = { rate_limit_per_second: { kind: "rate" } };

/** A channel as adapters see it: config with secrets in clear. */
export interface AdapterChannel {
  id: string;
  tenantId: string;
  type: string;
  config: JsonObject;
  /** The channel secret (signs webhook deliveries, verifies inbound requests). */
  secret: string;
}

/** An activity on its way out, in public JSON (design.md §3). */
export interface OutboundActivity {
  id: string;
  conversation_id: string;
  seq: string;
  type: string;
  text?: string;
  from?: { id: string; name?: string };
  attachments?: JsonObject[];
  metadata?: JsonObject;
  [field: string]: unknown;
}

export interface DeliverInput {
  deliveryId: string;
  activity: OutboundActivity;
  channel: AdapterChannel;
  /** The provider's thread (e.g. a WhatsApp wa_id) of the conversation, if it came from one. */
  externalId?: string;
  http: OutboundHttp;
}

interface DeliverResult {
  /** The provider's id of the sent message, matched later by its status callbacks. */
  providerMessageId?: string;
  /** Activities the channel answers with in the same conversation (echo). */
  replies?: { text: string }[];
}

/** A raw inbound request: signatures cover these exact bytes. */
export interface InboundRequest {
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

/** One message a provider sent us. */
export interface InboundMessage {
  /** The provider's thread id: the conversation's external_id. */
  externalId: string;
  /** The provider's message id: a repeat is stored once. */
  messageId: string;
  from: { id: string; name?: string };
  type?: "message" | "event";
  text?: string;
  attachments?: JsonObject[];
  metadata?: JsonObject;
}

/** A provider's report on a message we sent. */
export interface InboundStatus {
  providerMessageId: string;
  status: "sent" | "delivered" | "read" | "failed";
  error?: string;
}

export interface InboundBatch {
  messages: InboundMessage[];
  statuses: InboundStatus[];
}

/**
 * One channel type. Adding a type is one file in this folder plus its line in
 * index.ts; nothing else switches on channel types.
 */
export interface ChannelAdapter {
  type: string;
  config: ConfigSpec;
  /** Nothing leaves for this type (clients read the stream): its deliveries are recorded as delivered at once. */
  servedByStream?: boolean;
  /** Sends one activity; throws DeliveryError (or any error) when the try failed. */
  deliver(input: DeliverInput): Promise<DeliverResult>;
  /** Turns a verified inbound request into messages and statuses; throws InboundError when unparseable. */
  parseInbound(request: InboundRequest, channel: AdapterChannel): InboundBatch;
  /** The HMAC key of inbound signatures (X-Hub-Signature-256); the channel secret unless the provider has its own. */
  inboundSigningKey?(channel: AdapterChannel): string;
  /** Answers a provider's subscription challenge (GET), or undefined to refuse it. */
  answerChallenge?(query: URLSearchParams, channel: AdapterChannel): string | undefined;
}

/**
 * A failed try; `permanent` ones are not retried (e.g. the provider rejected the request as invalid).
 * The message is stored as the delivery's last_error and often quotes the provider's answer:
 * U+0000 in it would make PostgreSQL refuse the whole update, so it is dropped here.
 */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly permanent = false,
  ) {
    super(message.replaceAll("\u0000", ""));
  }
}

/** An inbound payload the adapter cannot read (→ 400). */
export class InboundError extends Error {}

/**
 * A JSON body of an inbound request, or InboundError. Provider payloads reach
 * PostgreSQL without an RPC request check of their own (statuses, metadata),
 * so U+0000 (`\u0000` in any string or key) is refused here, for every adapter.
 */
export function parseJsonBody(request: InboundRequest): unknown {
  let body: unknown;
  try {
    body = JSON.parse(request.body.toString("utf8"));
  } catch {
    throw new InboundError("body is not JSON");
  }
  const nul = firstNulPath(body, "");
  if (nul !== undefined) throw new InboundError(`${nul || "body"}: must not contain U+0000`);
  return body;
}

/** A required non-empty string config value (validated at channel creation). */
export function configString(channel: AdapterChannel, name: string): string {
  const value = channel.config[name];
  if (typeof value !== "string" || !value) throw new DeliveryError(`channel config ${name} is missing`, true);
  return value;
}
