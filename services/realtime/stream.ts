import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import { ActivityFrameSchema, ConnectionEstablishedFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import { type Bus, type BusFrame, conversationTopic, decodeBusFrame } from "../common/events/bus.js";
import { encodeServerFrame } from "./frames.js";

// Replay page size: big pages, few round trips, bounded memory per socket.
const REPLAY_PAGE = 500;

/** What the stream logic needs of a socket; false from send means it is gone. */
export interface StreamSocket {
  send(frame: BusFrame): boolean;
  /** Joins the live topic (uWS pub/sub, fed by the bus bridge). */
  join(topic: string): void;
}

/**
 * Opens a conversation stream: the current watermark first, then (when the
 * client gave one) every stored activity after its watermark, then live
 * frames. Live frames arriving meanwhile are held and de-duplicated against
 * the replay, so the seam has no gap and no duplicate. The hand-over to the
 * live topic happens in one synchronous step after the last await.
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
  const held: BusFrame[] = [];
  const stopHolding = options.bus.subscribe(topic, (frame) => held.push(frame));
  try {
    await options.bus.whenSubscribed(topic);
    const conversation = await conversations.getConversation({ id: conversationId }, { headers });
    let sent = conversation.lastSeq;
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
    /** Sends every stored activity after `from`; returns the last seq sent, or undefined if the socket went. */
    const replay = async (from: bigint): Promise<bigint | undefined> => {
      let last = from;
      for (let page = 0; page < 1_000_000; page++) {
        const res = await conversations.listActivities(
          { conversationId, watermark: last.toString(), limit: REPLAY_PAGE },
          { headers },
        );
        for (const activity of res.activities) {
          if (!socket.send(encodeServerFrame(create(ActivityFrameSchema, { activity })))) return undefined;
          last = activity.seq;
        }
        if (res.activities.length < REPLAY_PAGE) return last;
      }
      return last;
    };
    if (options.watermark !== undefined) {
      const last = await replay(BigInt(options.watermark));
      if (last === undefined) return;
      sent = last;
    }
    // Frames lost on the way (a gap, or a hole before the first held one) are in the log: read them.
    const seqs = held.map(seqOf);
    const firstSeq = seqs.find((seq) => seq !== undefined);
    if (held.some((f) => f.type === "gap") || (firstSeq !== undefined && firstSeq > sent + 1n)) {
      const last = await replay(sent);
      if (last === undefined) return;
      sent = last;
    }
    for (const [i, frame] of held.entries()) {
      if (frame.type === "gap") continue;
      const seq = seqs[i];
      if (seq !== undefined && seq <= sent) continue;
      if (!socket.send(frame)) return;
    }
    socket.join(topic);
  } finally {
    stopHolding();
  }
}

/** The seq of an activity frame; undefined for other frames. */
function seqOf(frame: BusFrame): bigint | undefined {
  if (frame.type !== "activity") return undefined;
  const decoded = decodeBusFrame(frame);
  return decoded.$typeName === "converger.v1.ActivityFrame" ? decoded.activity?.seq : undefined;
}
