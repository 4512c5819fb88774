// The channel adapter library's public face: the one table of channel types
// and what callers need to use an adapter. Only this file imports adapters.
import type { ChannelAdapter } from "./adapter.js";
import { echo } from "./channels/echo.js";
import { instagram } from "./channels/instagram.js";
import { messenger } from "./channels/messenger.js";
import { telegram } from "./channels/telegram.js";
import { webhook } from "./channels/webhook.js";
import { websocket } from "./channels/websocket.js";
import { whatsappInfobip } from "./channels/whatsapp-infobip.js";
import { whatsappMeta } from "./channels/whatsapp-meta.js";

export type {
  AdapterChannel,
  ChannelAdapter,
  ConfigSpec,
  FieldKind,
  InboundMessage,
  OutboundActivity,
} from "./adapter.js";
export { DeliveryError, InboundError } from "./adapter.js";
export { createOutboundHttp, type OutboundHttp } from "./http-out.js";
export { verifyHubSignature } from "./signature.js";

/** Every channel type (design.md §3 Channels): the one table delivery, inbound and config checks use. */
const ADAPTERS: Readonly<Record<string, ChannelAdapter>> = Object.fromEntries(
  [echo, websocket, webhook, whatsappMeta, whatsappInfobip, telegram, instagram, messenger].map((a) => [a.type, a]),
);

/** Every adapter, in the table's order (for the channel types RPC). */
export function allAdapters(): readonly ChannelAdapter[] {
  return Object.values(ADAPTERS);
}

export function adapterOf(type: string): ChannelAdapter | undefined {
  return Object.hasOwn(ADAPTERS, type) ? ADAPTERS[type] : undefined;
}
