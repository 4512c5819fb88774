import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ServiceImpl, type Transport } from "@connectrpc/connect";
import { ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import {
  type RealtimeService,
  type StreamFrameSchema,
  SubscribeRequestSchema,
} from "../../gen/converger/v1/realtime_pb.js";
import { CLIENT_IP_HEADER, kPrincipal } from "../common/access/context.js";
import { activitySeqOf, type Bus, type BusFrame } from "../common/events/bus.js";
import { notFound } from "../common/rpc/errors.js";
import { validateMessage } from "../common/rpc/validation.js";
import { decodeServerFrame } from "./frames.js";
import { createSequencer } from "./sequencer.js";
import { openConversationStream } from "./stream.js";

// A gRPC subscriber this far behind is cut off (it resumes from its last seq), as slow sockets are.
const MAX_QUEUED_FRAMES = 10_000;
const FORWARDED = ["authorization", "x-api-key", CLIENT_IP_HEADER];

type Frame = MessageInitShape<typeof StreamFrameSchema>;

/**
 * RealtimeService.Subscribe: the edge's conversation stream for gRPC clients
 * (backends that prefer a typed stream to a WebSocket). Same replay, seam and
 * live feed as the edge; the caller's own credentials read the conversation.
 */
export function realtimeImpl(deps: {
  conversationsTransport: Transport;
  bus: Bus;
}): ServiceImpl<typeof RealtimeService> {
  const conversations = createClient(ConversationsService, deps.conversationsTransport);
  return {
    async *subscribe(req, ctx) {
      validateMessage(SubscribeRequestSchema, req);
      const principal = ctx.values.get(kPrincipal);
      if (principal.kind === "end_user" && principal.conversationId !== req.conversationId)
        throw notFound("conversation");
      const headers = new Headers();
      for (const name of FORWARDED) {
        const value = ctx.requestHeader.get(name);
        if (value !== null) headers.set(name, value);
      }
      const queue: Frame[] = [];
      let wake: (() => void) | undefined;
      let overflow = false;
      let lost = false;
      const push = (frame: BusFrame) => {
        const mapped = toStreamFrame(frame);
        if (!mapped) return true;
        if (queue.length >= MAX_QUEUED_FRAMES) overflow = true;
        else queue.push(mapped);
        wake?.();
        return !overflow;
      };
      const onLost = () => {
        lost = true;
        wake?.();
      };
      let stopLive: (() => void) | undefined;
      try {
        await openConversationStream({
          socket: {
            send: push,
            // This stream's own live feed: no position until it joins, and it joins where it stands.
            livePosition: () => undefined,
            join: (topic, at) => (stopLive = followInOrder(deps.bus, topic, at, push, onLost)),
            interruptLive: () => undefined,
          },
          conversations,
          headers,
          bus: deps.bus,
          conversationId: req.conversationId,
          tenantId: "tenantId" in principal ? principal.tenantId : "",
          // No watermark: live frames only.
          ...(req.watermark === undefined ? {} : { watermark: req.watermark.toString() }),
          established: false,
        });
        while (!ctx.signal.aborted) {
          if (overflow) throw new ConnectError("subscriber too slow; resume from the last seq", Code.ResourceExhausted);
          if (lost) throw new ConnectError("live feed interrupted; resume from the last seq", Code.Unavailable);
          const frame = queue.shift();
          if (frame) {
            yield frame;
            continue;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          wake = undefined;
        }
      } finally {
        stopLive?.();
      }
    },
  };
}

/** Follows `topic` from seq `at`: activities in seq order, other frames as they come; `lost` when frames were. */
function followInOrder(bus: Bus, topic: string, at: bigint, push: (frame: BusFrame) => void, lost: () => void) {
  const sequencer = createSequencer(at, { deliver: push, lost });
  const off = bus.subscribe(topic, (frame) => {
    const seq = activitySeqOf(frame);
    if (frame.type === "gap") {
      sequencer.stop();
      lost();
    } else if (seq === undefined) push(frame);
    else sequencer.push(seq, frame);
  });
  return () => {
    off();
    sequencer.stop();
  };
}

function toStreamFrame(json: BusFrame): Frame | undefined {
  if (json.type === "gap") return undefined;
  const frame = decodeServerFrame(json);
  switch (frame.$typeName) {
    case "converger.v1.ActivityFrame":
      return frame.activity && { frame: { case: "activity", value: frame.activity } };
    case "converger.v1.TypingFrame":
      return { frame: { case: "typing", value: { conversationId: frame.conversationId, from: frame.from } } };
    case "converger.v1.ReadFrame": {
      const { conversationId, userId, readUpTo } = frame;
      return { frame: { case: "read", value: { conversationId, userId, readUpTo } } };
    }
    default:
      return undefined;
  }
}
