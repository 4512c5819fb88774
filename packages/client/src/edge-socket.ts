import { type ClientFrame, decodeServerFrame, encodeClientFrame, type ServerFrame } from "./frame-codec.js";

/** How a socket ended: its close code, or the HTTP status of a refused upgrade when the runtime tells it. */
export interface SocketEnd {
  code: number;
  reason: string;
  /** Whether the upgrade succeeded before the end. */
  opened: boolean;
  /** 401, 403, 429… of a refused upgrade; browsers never expose it, `ws` puts it in its error message. */
  refusedStatus?: number | undefined;
}

export interface EdgeSocket {
  send(frame: ClientFrame): boolean;
  close(code?: number, reason?: string): void;
}

// Offered beside the token so that the edge picks this one and never echoes the token back.
const PROTOCOL = "converger.v1";

/**
 * One WebSocket to the edge, with the token as the `bearer.<jwt>` subprotocol
 * (kept out of URLs and the access logs that record them). Frames arrive
 * decoded; a frame that cannot be read is reported and skipped.
 */
export function openEdgeSocket(options: {
  WebSocket: typeof globalThis.WebSocket;
  url: string;
  token: string | undefined;
  onOpen(): void;
  onFrame(frame: ServerFrame): void;
  onBadFrame(error: unknown): void;
  onEnd(end: SocketEnd): void;
}): EdgeSocket {
  const protocols = options.token ? [PROTOCOL, `bearer.${options.token}`] : [];
  const ws = new options.WebSocket(options.url, protocols);
  let opened = false;
  let refusedStatus: number | undefined;
  let ended = false;
  // Frames still buffered when the stream closed its socket belong to a connection it gave up.
  let closing = false;
  ws.onopen = () => {
    opened = true;
    options.onOpen();
  };
  ws.onmessage = (event: MessageEvent) => {
    if (ended || closing || typeof event.data !== "string") return;
    let frame: ServerFrame | undefined;
    try {
      frame = decodeServerFrame(event.data);
    } catch (error) {
      options.onBadFrame(error);
      return;
    }
    if (frame) options.onFrame(frame);
  };
  ws.onerror = (event: Event) => {
    const message = "message" in event && typeof event.message === "string" ? event.message : "";
    const status = /Unexpected server response: (\d{3})/.exec(message)?.[1];
    if (status) refusedStatus = Number(status);
  };
  ws.onclose = (event: { code: number; reason: string }) => {
    if (ended) return;
    ended = true;
    options.onEnd({ code: event.code, reason: event.reason, opened, refusedStatus });
  };
  return {
    send(frame) {
      if (ended || ws.readyState !== ws.OPEN) return false;
      ws.send(encodeClientFrame(frame));
      return true;
    },
    close(code = 1000, reason = "") {
      closing = true;
      if (ws.readyState === ws.CLOSED) return;
      ws.close(code, reason);
    },
  };
}
