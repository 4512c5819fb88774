import { type AdapterChannel, adapterOf, DeliveryError } from "../channel-adapters/index.js";

// Shorter values are too common to strip from a message without mangling it.
const MIN_SECRET_LENGTH = 4;
const REDACTED = "[redacted]";

/** The channel's credentials: its secret, its secret config fields, and every configured header value. */
function secretValuesOf(channel: AdapterChannel): string[] {
  const values = [channel.secret];
  const spec = adapterOf(channel.type)?.config ?? {};
  for (const [name, field] of Object.entries(spec)) {
    const value = channel.config[name];
    if (field.secret && typeof value === "string") values.push(value);
    if (field.kind === "headers" && value && typeof value === "object" && !Array.isArray(value)) {
      for (const header of Object.values(value)) if (typeof header === "string") values.push(header);
    }
  }
  return values.filter((value) => value.length >= MIN_SECRET_LENGTH);
}

/**
 * A failed try with the channel's own credentials cut out of its message. A
 * provider's error often quotes the request (Meta echoing a bad access token,
 * a Telegram URL with the bot token in its path), and the message becomes the
 * delivery's last_error, its audit event and a log line; no log pattern can
 * recognise an arbitrary provider token, but the channel knows its own.
 */
export function withoutChannelSecrets(error: unknown, channel: AdapterChannel | undefined): DeliveryError {
  let message = error instanceof Error ? error.message : String(error);
  const permanent = error instanceof DeliveryError && error.permanent;
  if (!channel) return error instanceof DeliveryError ? error : new DeliveryError(message, permanent);
  for (const value of secretValuesOf(channel)) {
    message = message.replaceAll(value, REDACTED).replaceAll(encodeURIComponent(value), REDACTED);
  }
  return new DeliveryError(message, permanent);
}
