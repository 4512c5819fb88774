import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { CreateActivityRequestSchema } from "../../gen/converger/v1/conversations_pb.js";
import {
  AckFrameSchema,
  AuthOkFrameSchema,
  ErrorFrameSchema,
  PongFrameSchema,
} from "../../gen/converger/v1/frames_pb.js";
import { conversationTopic } from "../common/events/bus.js";
import { codeName } from "../common/rpc/errors.js";
import type { EdgeContext, EdgeSocket } from "./edge.js";
import { authenticateEdge, UpgradeError, userKeyOf } from "./edge-auth.js";
import { CLOSE, type ClientFrame, FrameError, parseClientFrame } from "./frames.js";
import { without } from "./socket-state.js";

// Per-socket inbound budget; going over answers an error, doing so repeatedly closes 4429.
const FRAMES_PER_SECOND = 50;
const STRIKES_BEFORE_CLOSE = 3;

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
    ctx.send(
      ws,
      create(ErrorFrameSchema, {
        code: "resource_exhausted",
        message: `at most ${FRAMES_PER_SECOND} frames per second`,
      }),
    );
    return;
  }
  let frame: ClientFrame | undefined;
  try {
    if (isBinary) throw new FrameError("invalid_argument", "frames are JSON text; binary frames are not accepted");
    frame = parseClientFrame(data);
    await dispatch(ctx, ws, frame);
  } catch (error) {
    const clientId =
      error instanceof FrameError
        ? error.clientId
        : frame?.$typeName === "converger.v1.PublishActivityFrame"
          ? frame.clientId
          : undefined;
    const { code, message, retryAfter } = describe(error);
    if (code === "internal") ctx.log.error({ err: error }, "frame failed");
    // A rate-limited publish names when to try again (whole seconds); the socket stays open.
    ctx.send(ws, create(ErrorFrameSchema, { code, message, clientId: clientId || undefined, retryAfter }));
  }
}

async function dispatch(ctx: EdgeContext, ws: EdgeSocket, frame: ClientFrame): Promise<void> {
  const state = ws.getUserData();
  const { principal } = state;
  switch (frame.$typeName) {
    case "converger.v1.PingFrame":
      ctx.send(ws, create(PongFrameSchema));
      return;
    case "converger.v1.AuthFrame": {
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
      ctx.send(ws, create(AuthOkFrameSchema, { expiresAt: new Date(renewed.expiresAt).toISOString() }));
      return;
    }
    case "converger.v1.SubscribeFrame": {
      const topic = conversationTopic(frame.conversationId);
      if (state.subscriptions.includes(topic) || state.opening.includes(topic)) return;
      if (principal.kind === "end_user" && frame.conversationId !== principal.conversationId) {
        throw new FrameError("not_found", "conversation not found");
      }
      if (state.subscriptions.length + state.opening.length >= ctx.config.wsMaxSubscriptions) {
        throw new FrameError("resource_exhausted", `at most ${ctx.config.wsMaxSubscriptions} subscriptions per socket`);
      }
      state.opening = [...state.opening, topic];
      try {
        await ctx.stream(ws, frame.conversationId, frame.watermark?.toString());
      } finally {
        state.opening = without(state.opening, topic);
      }
      return;
    }
    case "converger.v1.UnsubscribeFrame":
      ctx.leave(ws, conversationTopic(frame.conversationId));
      return;
    case "converger.v1.PublishActivityFrame": {
      const conversationId = frame.conversationId ?? (principal.kind === "end_user" ? principal.conversationId : "");
      if (!conversationId) throw new FrameError("invalid_argument", "conversation_id: is required", frame.clientId);
      const request = create(CreateActivityRequestSchema, {
        conversationId,
        type: frame.activityType,
        text: frame.text,
        attachments: frame.attachments,
        metadata: frame.metadata ?? {},
        idempotencyKey: frame.clientId,
        // "from is the token's user" (design.md §4): an OAuth client's token is the client's own.
        from: frame.from ?? (principal.kind === "oauth_client" ? { id: principal.clientId } : undefined),
      });
      const activity = await ctx.conversations.createActivity(request, { headers: ctx.headersFor(state) });
      ctx.send(ws, create(AckFrameSchema, { clientId: frame.clientId, activity }));
      return;
    }
  }
}

function describe(error: unknown): { code: string; message: string; retryAfter?: number | undefined } {
  if (error instanceof FrameError) return { code: error.code, message: error.message };
  const connectError = ConnectError.from(error);
  const retryAfter = Number(connectError.metadata.get("retry-after")) || undefined;
  return { code: codeName(connectError.code), message: connectError.rawMessage, retryAfter };
}
