import { create } from "@bufbuild/protobuf";
import type { Activity } from "../../../gen/converger/v1/conversations_pb.js";
import { AuthFrameSchema, SubscribeFrameSchema, UnsubscribeFrameSchema } from "../../../gen/converger/v1/frames_pb.js";
import { iterateActivities } from "./activity-iterator.js";
import { createBackoff } from "./backoff.js";
import { afterEnd, CLIENT_GAP_CLOSE } from "./close-policy.js";
import type { ClientContext } from "./context.js";
import { type EdgeSocket, openEdgeSocket, type SocketEnd } from "./edge-socket.js";
import { createEmitter } from "./emitter.js";
import type { ServerFrame } from "./frame-codec.js";
import { createSendQueue } from "./send-queue.js";
import { createSeqTracker } from "./seq-tracker.js";
import { StreamError } from "./stream-error.js";
import type { ConvergerStream, StreamEvents, StreamOptions, StreamState, StreamStats } from "./stream-types.js";
import { edgeUrl } from "./stream-url.js";
import { jwtExpiresAt, renewDelay } from "./token-expiry.js";

export type { SendInput } from "./send-queue.js";
export { StreamError } from "./stream-error.js";
export type { ConvergerStream, StreamEvents, StreamOptions, StreamState, StreamStats } from "./stream-types.js";

/**
 * A stream of the edge (design.md §4, §9) that survives restarts: it
 * reconnects with jittered back-off, resumes each conversation from the last
 * seq it delivered and drops what it delivered already, so every seq comes
 * out once and in order; it renews its token before expiry and resends
 * unacked sends with their client_id.
 */
export function createStream(context: ClientContext, options: StreamOptions = {}): ConvergerStream {
  const WebSocketClass = context.WebSocket ?? globalThis.WebSocket;
  if (!WebSocketClass) throw new Error("no WebSocket: pass { WebSocket } from the ws package in Node");
  const emitter = createEmitter<StreamEvents>((error, event) => {
    // An error listener that throws would be handed its own error again, without end.
    if (event === "error") console.error("converger stream: an error listener threw", error);
    else emitter.emit("error", new StreamError("internal", `a ${String(event)} listener threw: ${String(error)}`));
  });
  const backoff = createBackoff(options);
  const seqs = createSeqTracker();
  const stats: StreamStats = { connectionAttempts: 0, activityFrames: 0, duplicates: 0, gaps: 0 };
  // Conversations subscribed by frame (OAuth), with the watermark of the first subscribe.
  const subscriptions = new Map<string, string | undefined>();
  let state: StreamState = "connecting";
  let socket: EdgeSocket | undefined;
  let established = false;
  let boundConversation: string | undefined;
  let token: string | undefined;
  let refreshNext = false;
  let refreshedAfterRefusal = false;
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  let renewTimer: ReturnType<typeof setTimeout> | undefined;
  let failure: StreamError | undefined;

  const queue = createSendQueue({ timeoutMs: options.sendTimeoutMs, write: (frame) => socket?.send(frame) ?? false });

  const isClosed = () => state === "closed";

  function setState(next: StreamState) {
    if (state === next) return;
    state = next;
    emitter.emit("state", next);
  }

  async function connect() {
    if (state === "closed") return;
    stats.connectionAttempts++;
    let next: string | undefined;
    try {
      next = await context.token(refreshNext);
    } catch (error) {
      return scheduleReconnect(backoff.next(), new StreamError("unauthenticated", `getToken failed: ${String(error)}`));
    }
    refreshNext = false;
    // close() may have come while getToken was running.
    if (isClosed()) return;
    token = next;
    established = false;
    const watermark = boundConversation ? seqs.watermark(boundConversation)?.toString() : undefined;
    try {
      socket = openEdgeSocket({
        WebSocket: WebSocketClass as typeof globalThis.WebSocket,
        url: edgeUrl(context.baseUrl, options, { watermark: watermark ?? options.watermark ?? "0", token }),
        token,
        onOpen: () => queue.flush(),
        onFrame,
        onBadFrame: (error) => emitter.emit("error", new StreamError("invalid_argument", `unreadable frame: ${error}`)),
        onEnd,
      });
    } catch (error) {
      // The WebSocket constructor throws only for a URL or protocol it can never open.
      stop(new StreamError("invalid_argument", `cannot open ${options.url ?? context.baseUrl}: ${String(error)}`));
    }
  }

  function onFrame(frame: ServerFrame) {
    switch (frame.$typeName) {
      case "converger.v1.ConnectionEstablishedFrame":
        return onEstablished(frame.conversationId, frame.watermark);
      case "converger.v1.ActivityFrame":
        return frame.activity && onActivity(frame.activity);
      case "converger.v1.TypingFrame":
        return emitter.emit("typing", frame);
      case "converger.v1.ReadFrame":
        return emitter.emit("read", frame);
      case "converger.v1.DeliveryFrame":
        return emitter.emit("delivery", frame);
      case "converger.v1.EventCreatedFrame":
        return frame.event && emitter.emit("event", frame.event);
      case "converger.v1.AckFrame":
        return queue.ack(frame);
      case "converger.v1.ErrorFrame":
        if (!queue.refuse(frame)) emitter.emit("error", new StreamError(frame.code, frame.message));
        return;
      case "converger.v1.AuthOkFrame":
        return scheduleRenewal(Date.parse(frame.expiresAt));
      case "converger.v1.PongFrame":
        return;
    }
  }

  function onEstablished(conversationId: string | undefined, watermark: bigint) {
    if (!established) {
      established = true;
      refreshedAfterRefusal = false;
      backoff.reset();
      if (conversationId) {
        boundConversation = conversationId;
        seqs.start(conversationId, BigInt(options.watermark ?? "0"));
      }
      // Tokens bound to one conversation stream it already: subscribing is for the others.
      else for (const id of subscriptions.keys()) sendSubscribe(id);
      const expiresAt = token ? jwtExpiresAt(token) : undefined;
      if (expiresAt !== undefined) scheduleRenewal(expiresAt);
      setState("open");
    } else if (conversationId) {
      // A live-only subscription starts at the seq the server had then; later reconnects resume from there.
      seqs.start(conversationId, watermark);
    }
  }

  function onActivity(activity: Activity) {
    stats.activityFrames++;
    // A frame already on its way when the conversation was unsubscribed.
    if (activity.conversationId !== boundConversation && !subscriptions.has(activity.conversationId)) return;
    const verdict = seqs.admit(activity.conversationId, activity.seq);
    if (verdict === "deliver") return emitter.emit("activity", activity);
    if (verdict === "duplicate") {
      stats.duplicates++;
      return;
    }
    // The server never skips a seq; if a frame got lost anyway, the log has it: resume from there.
    stats.gaps++;
    socket?.close(CLIENT_GAP_CLOSE, "gap: resuming by watermark");
  }

  function sendSubscribe(conversationId: string) {
    const watermark = seqs.watermark(conversationId)?.toString() ?? subscriptions.get(conversationId);
    socket?.send(
      create(SubscribeFrameSchema, {
        conversationId,
        ...(watermark === undefined ? {} : { watermark: BigInt(watermark) }),
      }),
    );
  }

  function scheduleRenewal(expiresAt: number) {
    clearTimeout(renewTimer);
    if (Number.isNaN(expiresAt)) return;
    renewTimer = setTimeout(() => void renew(), renewDelay(expiresAt));
  }

  async function renew() {
    const renewed = await context.token(true).catch((error: unknown) => {
      emitter.emit("error", new StreamError("unauthenticated", `getToken failed: ${String(error)}`));
      return undefined;
    });
    // A static token cannot be renewed: the edge closes with 4408 and the reconnect reports it.
    if (!renewed || renewed === token) return;
    token = renewed;
    socket?.send(create(AuthFrameSchema, { token: renewed }));
  }

  function onEnd(end: SocketEnd) {
    socket = undefined;
    clearTimeout(renewTimer);
    if (state === "closed") return;
    const next = afterEnd(end, { refreshedAfterRefusal, backoff });
    if (next.stop) return stop(next.stop);
    if (next.refreshToken) refreshNext = true;
    if (end.refusedStatus === 401) refreshedAfterRefusal = true;
    scheduleReconnect(next.delayMs);
  }

  function scheduleReconnect(delayMs: number, error?: StreamError) {
    if (error) emitter.emit("error", error);
    setState("reconnecting");
    reconnectTimer = setTimeout(() => void connect(), delayMs);
  }

  function stop(error: StreamError | undefined) {
    if (state === "closed") return;
    failure = error;
    clearTimeout(reconnectTimer);
    clearTimeout(renewTimer);
    const current = socket;
    socket = undefined;
    current?.close(1000, "closed by the client");
    queue.failAll(error ?? new StreamError("cancelled", "the stream was closed"));
    if (error) emitter.emit("error", error);
    setState("closed");
  }

  const stream: ConvergerStream = {
    on: emitter.on,
    send: (input) =>
      state === "closed"
        ? Promise.reject(failure ?? new StreamError("cancelled", "the stream is closed"))
        : queue.add(input),
    subscribe(conversationId, watermark) {
      // An explicit watermark restarts the conversation there; without one it starts where the server is.
      seqs.forget(conversationId);
      if (watermark !== undefined) seqs.start(conversationId, BigInt(watermark));
      subscriptions.set(conversationId, watermark);
      if (established && !boundConversation) sendSubscribe(conversationId);
    },
    unsubscribe(conversationId) {
      subscriptions.delete(conversationId);
      seqs.forget(conversationId);
      socket?.send(create(UnsubscribeFrameSchema, { conversationId }));
    },
    close: () => stop(undefined),
    get state() {
      return state;
    },
    stats: () => ({ ...stats }),
    [Symbol.asyncIterator]: () => iterateActivities(emitter.on, () => (state === "closed" ? { failure } : undefined)),
  };
  if (options.conversationId) stream.subscribe(options.conversationId, options.watermark ?? "0");
  void connect();
  return stream;
}
