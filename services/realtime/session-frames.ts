import { ConnectError } from "@connectrpc/connect";
import { ActivitySchema, ActivityType, CreateActivityRequestSchema } from "../../gen/converger/v1/conversations_pb.js";
import { conversationTopic } from "../common/events/bus.js";
import { codeName } from "../common/rpc/errors.js";
import { fromApiJson, toApiJson } from "../common/rpc/json.js";
import type { EdgeContext, EdgeSocket } from "./edge.js";
import { authenticateEdge, UpgradeError, userKeyOf } from "./edge-auth.js";
import { CLOSE, type ClientFrame, FrameError, parseClientFrame } from "./frames.js";
import { without } from "./socket-state.js";

// Per-socket inbound budget; going over answers an error, doing so repeatedly closes 4429.
const FRAMES_PER_SECOND = 50;
const STRIKES_BEFORE_CLOSE = 3;

const TYPES = { message: ActivityType.MESSAGE, event: ActivityType.EVENT, typing: ActivityType.TYPING };

/** Handles one client frame; failures answer an error frame and keep the socket open. */
export async function handleFrame(
  ctx: EdgeContext,
  ws: EdgeSocket,
  data: ArrayBuffer,
  isBinary: boolean,
): Promise<void> {
  const state = ws.getUserData();
  const now = Date.now();
  if (now >= state.budgetResetAt) {
    state.framesLeft = FRAMES_PER_SECOND;
    state.budgetResetAt = now + 1000;
  }
  if (state.framesLeft-- <= 0) {
    if (++state.strikes >= STRIKES_BEFORE_CLOSE) return ws.end(CLOSE.rateLimited, "rate limited");
    ctx.send(ws, {
      type: "error",
      code: "resource_exhausted",
      message: `at most ${FRAMES_PER_SECOND} frames per second`,
    });
    return;
  }
  let frame: ClientFrame | undefined;
  try {
    if (isBinary) throw new FrameError("invalid_argument", "frames are JSON text; binary frames are not accepted");
    frame = parseClientFrame(data);
    await dispatch(ctx, ws, frame);
  } catch (error) {
    const clientId =
      error instanceof FrameError ? error.clientId : frame?.type === "activity" ? frame.client_id : undefined;
    const { code, message, retryAfter } = describe(error);
    if (code === "internal") ctx.log.error({ err: error }, "frame failed");
    ctx.send(ws, {
      type: "error",
      code,
      message,
      ...(clientId ? { client_id: clientId } : {}),
      // A rate-limited publish names when to try again (whole seconds); the socket stays open.
      ...(retryAfter ? { retry_after: retryAfter } : {}),
    });
  }
}

async function dispatch(ctx: EdgeContext, ws: EdgeSocket, frame: ClientFrame): Promise<void> {
  const state = ws.getUserData();
  const { principal } = state;
  switch (frame.type) {
    case "ping":
      ctx.send(ws, { type: "pong" });
      return;
    case "auth": {
      const renewed = await authenticateEdge(frame.token, ctx.access.verifier, ctx.access.directory).catch((error) => {
        throw error instanceof UpgradeError ? new FrameError("unauthenticated", error.message) : error;
      });
      const same =
        userKeyOf(renewed.principal) === userKeyOf(principal) &&
        (renewed.principal.kind !== "end_user" ||
          (principal.kind === "end_user" && renewed.principal.conversationId === principal.conversationId));
      if (!same) throw new FrameError("permission_denied", "the new token is for another user or conversation");
      state.token = frame.token;
      state.expiresAt = renewed.expiresAt;
      ctx.expiries.schedule(ws, renewed.expiresAt);
      ctx.send(ws, { type: "auth_ok", expires_at: new Date(renewed.expiresAt).toISOString() });
      return;
    }
    case "subscribe": {
      const topic = conversationTopic(frame.conversation_id);
      if (state.subscriptions.includes(topic) || state.opening.includes(topic)) return;
      if (principal.kind === "end_user" && frame.conversation_id !== principal.conversationId) {
        throw new FrameError("not_found", "conversation not found");
      }
      if (state.subscriptions.length + state.opening.length >= ctx.config.wsMaxSubscriptions) {
        throw new FrameError("resource_exhausted", `at most ${ctx.config.wsMaxSubscriptions} subscriptions per socket`);
      }
      state.opening = [...state.opening, topic];
      try {
        await ctx.stream(ws, frame.conversation_id, frame.watermark);
      } finally {
        state.opening = without(state.opening, topic);
      }
      return;
    }
    case "unsubscribe":
      ctx.leave(ws, conversationTopic(frame.conversation_id));
      return;
    case "activity": {
      const conversationId = frame.conversation_id ?? (principal.kind === "end_user" ? principal.conversationId : "");
      if (!conversationId) throw new FrameError("invalid_argument", "conversation_id: is required", frame.client_id);
      const request = fromApiJson(CreateActivityRequestSchema, {
        conversation_id: conversationId,
        text: frame.text ?? "",
        attachments: (frame.attachments ?? []) as never,
        metadata: (frame.metadata ?? {}) as never,
      });
      request.type = TYPES[frame.activity_type];
      request.idempotencyKey = frame.client_id;
      const activity = await ctx.conversations.createActivity(request, { headers: ctx.headersFor(state) });
      ctx.send(ws, { type: "ack", client_id: frame.client_id, activity: toApiJson(ActivitySchema, activity) });
      return;
    }
  }
}

function describe(error: unknown): { code: string; message: string; retryAfter?: number } {
  if (error instanceof FrameError) return { code: error.code, message: error.message };
  const connectError = ConnectError.from(error);
  const retryAfter = Number(connectError.metadata.get("retry-after")) || undefined;
  return { code: codeName(connectError.code), message: connectError.rawMessage, retryAfter };
}
