import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import { ActivityFrameSchema, ConnectionEstablishedFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import { activitySeqOf, type Bus, type BusFrame, conversationTopic } from "../common/events/bus.js";
import { encodeServerFrame } from "./frames.js";
import { HOLD_MS } from "./sequencer.js";

// Replay page size: big pages, few round trips, bounded memory per socket.
const REPLAY_PAGE = 500;
// How long a socket that is ahead of this node's live feed waits for the feed
// to catch up: past HOLD_MS, so a hole the feed is waiting on has been given up on.
const CATCH_UP_MS = 2 * HOLD_MS;

/** What the stream logic needs of a socket; false from send means it is gone. */
export interface StreamSocket {
  send(frame: BusFrame): boolean;
  /** The seq the live feed of `topic` has reached for whoever joins now; undefined when nobody follows it in order. */
  livePosition(topic: string): bigint | undefined;
  /** Joins the live feed at `seq` (the position, if it has one): from here on, every activity after it, in order. */
  join(topic: string, seq: bigint): void;
  /** The live feed lost frames: its followers resume by watermark, and it has no position until the next join. */
  interruptLive(topic: string): void;
}

/**
 * Opens a conversation stream: the current watermark first, then (when the
 * client gave one) every stored activity after its watermark, then live
 * frames. The socket is brought, from the log and from live frames held
 * meanwhile, to exactly the seq the live feed stands at, and joins it in one
 * synchronous step after the last await: so the seam has no gap and no
 * duplicate, whatever order the nodes' frames arrive in.
 */
export async function openConversationStream(options: {
  socket: StreamSocket;
  conversations: Client<typeof ConversationsService>;
  headers: Headers;
  bus: Bus;
  conversationId: string;
  tenantId: string;
  watermark?: string;
  established: boolean;
}): Promise<void> {
  const { socket, conversations, headers, conversationId } = options;
  const topic = conversationTopic(conversationId);
  // Live frames while the stream opens: activities by seq (any order, maybe twice), the rest as they came.
  const held = new Map<bigint, BusFrame>();
  const others: BusFrame[] = [];
  let lost = false;
  let arrived: (() => void) | undefined;
  /** Resolves when a live frame arrives, or after `ms`. */
  const nextFrame = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      arrived = () => {
        clearTimeout(timer);
        arrived = undefined;
        resolve();
      };
    });
  const stopHolding = options.bus.subscribe(topic, (frame) => {
    const seq = activitySeqOf(frame);
    if (frame.type === "gap") lost = true;
    else if (seq === undefined) others.push(frame);
    else held.set(seq, frame);
    arrived?.();
  });
  try {
    await options.bus.whenSubscribed(topic);
    const conversation = await conversations.getConversation({ id: conversationId }, { headers });
    // Everything after lastSeq was committed after this read, so it reaches `held`.
    let sent =
      options.watermark === undefined ? conversation.lastSeq : min(BigInt(options.watermark), conversation.lastSeq);
    if (options.established) {
      socket.send(
        encodeServerFrame(
          create(ConnectionEstablishedFrameSchema, {
            conversationId,
            tenantId: options.tenantId,
            watermark: conversation.lastSeq,
          }),
        ),
      );
    }
    /** Sends stored activities after `sent`, up to the live position if there is one; false if the socket went. */
    const replay = async (): Promise<boolean> => {
      for (let page = 0; page < 1_000_000; page++) {
        const res = await conversations.listActivities(
          { conversationId, watermark: sent.toString(), limit: REPLAY_PAGE },
          { headers },
        );
        const cap = socket.livePosition(topic);
        for (const activity of res.activities) {
          if (cap !== undefined && activity.seq > cap) return true;
          if (!socket.send(encodeServerFrame(create(ActivityFrameSchema, { activity })))) return false;
          sent = activity.seq;
        }
        if (res.activities.length < REPLAY_PAGE) return true;
      }
      return true;
    };
    if (options.watermark !== undefined && !(await replay())) return;

    const deadline = Date.now() + CATCH_UP_MS;
    for (;;) {
      const position = socket.livePosition(topic);
      for (let next = sent + 1n; held.has(next) && (position === undefined || next <= position); next++) {
        if (!socket.send(held.get(next) as BusFrame)) return;
        sent = next;
      }
      for (const seq of held.keys()) if (seq <= sent) held.delete(seq);
      const behind = position === undefined ? held.size > 0 : sent < position;
      if (lost || behind) {
        // Frames lost on the way, or a hole before the held ones: they are in the log.
        lost = false;
        if (!(await replay())) return;
        continue;
      }
      if (position !== undefined && sent > position) {
        // Ahead of this node's live feed (the client resumed from another node, or the feed
        // waits on a frame): the feed brings the rest soon, or never, and then it is interrupted.
        const wait = deadline - Date.now();
        if (wait <= 0) socket.interruptLive(topic);
        else await nextFrame(wait);
        continue;
      }
      for (const frame of others) if (!socket.send(frame)) return;
      socket.join(topic, sent);
      return;
    }
  } finally {
    stopHolding();
  }
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
