import type { ChannelAdapter } from "../adapter.js";
import { parseGenericInbound } from "../generic-inbound.js";

/** Answers every message with its own text, as the bot, in the same conversation. */
export const echo: ChannelAdapter = {
  type: "echo",
  config: {},
  async deliver({ activity }) {
    const text = activity.type === "message" ? (activity.text ?? "") : "";
    return { replies: text ? [{ text }] : [] };
  },
  parseInbound: parseGenericInbound,
};
