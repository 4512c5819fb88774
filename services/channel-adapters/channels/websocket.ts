import type { ChannelAdapter } from "../adapter.js";
import { parseGenericInbound } from "../generic-inbound.js";

/** Clients of this channel read the stream (the edge serves them): nothing to send out. */
export const websocket: ChannelAdapter = {
  type: "websocket",
  config: {},
  servedByStream: true,
  async deliver() {
    return {};
  },
  parseInbound: parseGenericInbound,
};
