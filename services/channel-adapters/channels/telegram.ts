import {
  type ChannelAdapter,
  configString,
  type InboundBatch,
  InboundError,
  type InboundMessage,
  type InboundRequest,
  PACING_CONFIG,
  parseJsonBody,
} from "../adapter.js";
import { isObject } from "../generic-inbound.js";
import {
  failedTry,
  isSuccess,
  objectField,
  optionalString,
  postJson,
  providerUrl,
  recipientOf,
  stringField,
  textToSend,
} from "../provider-http.js";

const PROVIDER = "Telegram";
const TELEGRAM_BASE_URL = "https://api.telegram.org";

/** Telegram Bot API: `sendMessage` out; Update.message in. */
export const telegram: ChannelAdapter = {
  type: "telegram",
  config: {
    bot_token: { kind: "string", required: true, secret: true },
    base_url: { kind: "url" },
    ...PACING_CONFIG,
  },
  async deliver(input) {
    const text = textToSend(input);
    if (text === undefined) return {};
    const chatId = recipientOf(input, PROVIDER);
    const url = providerUrl(input.channel, TELEGRAM_BASE_URL, [
      `bot${configString(input.channel, "bot_token")}`,
      "sendMessage",
    ]);
    const answer = await postJson(input.http, url, {}, { chat_id: chatId, text });
    const body = isObject(answer.body) ? answer.body : {};
    if (isSuccess(answer.status) && body.ok !== false) {
      const providerMessageId = sentMessageId(body);
      return providerMessageId === undefined ? {} : { providerMessageId };
    }
    const code = typeof body.error_code === "number" ? body.error_code : answer.status;
    throw failedTry(PROVIDER, code, optionalString(body.description));
  },
  parseInbound: parseTelegramUpdate,
};

/** `result.message_id` of `{ok:true,result}`; a 2xx without one was still sent, just not trackable. */
function sentMessageId(body: Record<string, unknown>): string | undefined {
  const id = isObject(body.result) ? body.result.message_id : undefined;
  return Number.isSafeInteger(id) ? String(id) : undefined;
}

/**
 * An Update. Only `message` is a conversation message; other kinds (edits,
 * callback queries, member updates) are acknowledged and dropped, since
 * refusing them would make Telegram redeliver them.
 */
function parseTelegramUpdate(request: InboundRequest): InboundBatch {
  const update = objectField(parseJsonBody(request), "body");
  integerField(update.update_id, "update_id");
  if (update.message === undefined) return { messages: [], statuses: [] };
  return { messages: [readMessage(objectField(update.message, "message"))], statuses: [] };
}

function readMessage(message: Record<string, unknown>): InboundMessage {
  const chatId = integerField(objectField(message.chat, "message.chat").id, "message.chat.id");
  const from = objectField(message.from, "message.from");
  const name = displayName(from);
  return {
    externalId: String(chatId),
    messageId: `${chatId}:${integerField(message.message_id, "message.message_id")}`,
    from: { id: String(integerField(from.id, "message.from.id")), ...(name === undefined ? {} : { name }) },
    type: "message",
    // Media messages carry their text as a caption.
    text: stringField(message.text ?? message.caption ?? "", "message.text"),
  };
}

function displayName(user: Record<string, unknown>): string | undefined {
  const full = [optionalString(user.first_name), optionalString(user.last_name)].filter(Boolean).join(" ");
  return full || optionalString(user.username);
}

/** Telegram ids are integers of at most 52 significant bits: exact as JS numbers. */
function integerField(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw new InboundError(`${name}: must be an integer`);
  return value;
}
