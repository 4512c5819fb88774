import type { ChannelAdapter } from "./adapter.js";
import { echo } from "./echo.js";
import { instagram } from "./instagram.js";
import { messenger } from "./messenger.js";
import { telegram } from "./telegram.js";
import { webhook } from "./webhook.js";
import { websocket } from "./websocket.js";
import { whatsappInfobip } from "./whatsapp-infobip.js";
import { whatsappMeta } from "./whatsapp-meta.js";

/** Every channel type (design.md §3 Channels): the one table delivery, inbound and config checks use. */
export const ADAPTERS: Readonly<Record<string, ChannelAdapter>> = Object.fromEntries(
  [echo, websocket, webhook, whatsappMeta, whatsappInfobip, telegram, instagram, messenger].map((a) => [a.type, a]),
);

export function adapterOf(type: string): ChannelAdapter | undefined {
  return Object.hasOwn(ADAPTERS, type) ? ADAPTERS[type] : undefined;
}
