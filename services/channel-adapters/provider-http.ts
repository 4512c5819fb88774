import { type AdapterChannel, configString, type DeliverInput, DeliveryError, InboundError } from "./adapter.js";
import { isObject } from "./generic-inbound.js";
import type { OutboundHttp } from "./http-out.js";

/*
 * Helpers of the provider adapters (WhatsApp Cloud API, Messenger, Instagram,
 * Infobip, Telegram): their HTTP calls and the readers of their webhooks.
 */

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
