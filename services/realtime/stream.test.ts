import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Activity, ActivitySchema, ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import { ActivityFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import {
  activitySeqOf,
  type BusFrame,
  conversationTopic,
  createLocalBus,
  encodeBusFrame,
} from "../common/events/bus.js";
import { openConversationStream } from "./stream.js";
import { createTopicBridge } from "./topic-bridge.js";

const CONVERSATION = randomUUID();
const TOPIC = conversationTopic(CONVERSATION);

interface FakeSocket {
  frames: BusFrame[];
  joined: boolean;
  interrupted: boolean;
}

/**
 * One edge node: the stream, the topic bridge and the sockets that uWS
 * pub/sub would write to. Commits go to the log; `arrive` is a frame reaching
 * this node over the bus, later and in any order, as from other nodes.
 */
function node() {
  const bus = createLocalBus((error) => {
    throw error;
  });
  const log: Activity[] = [];
  const sockets: FakeSocket[] = [];
  const bridge = createTopicBridge(bus, {
    publish: (_topic, frame) => {
      for (const s of sockets) if (s.joined) s.frames.push(frame);
    },
    interrupt: () => {
      for (const s of sockets.filter((s) => s.joined)) {
        s.joined = false;
        s.interrupted = true;
        bridge.release(TOPIC);
      }
    },
  });
  const hooks: { duringOpen?: () => void } = {};
  const conversations = createClient(
    ConversationsService,
    createRouterTransport(({ service }) =>
      service(ConversationsService, {
        getConversation(req) {
          const lastSeq = BigInt(log.length);
          hooks.duringOpen?.();
          return { id: req.id, lastSeq };
        },
        listActivities(req) {
          const after = BigInt(req.watermark || "0");
          return { activities: log.filter((a) => a.seq > after).slice(0, req.limit) };
        },
      }),
    ),
  );
  const frameOf = (seq: number) => {
    const activity = log[seq - 1] as Activity;
    return encodeBusFrame(create(ActivityFrameSchema, { activity }));
  };
  return {
    hooks,
    commit(count: number) {
      for (let i = 0; i < count; i++) {
        log.push(
          create(ActivitySchema, { id: randomUUID(), conversationId: CONVERSATION, seq: BigInt(log.length + 1) }),
        );
      }
    },
    arrive(...seqs: number[]) {
      for (const seq of seqs) bus.deliver(TOPIC, frameOf(seq));
    },
    async open(watermark?: number) {
      const socket: FakeSocket = { frames: [], joined: false, interrupted: false };
      sockets.push(socket);
      await openConversationStream({
        socket: {
          send: (frame) => socket.frames.push(frame) > 0,
          livePosition: (topic) => bridge.position(topic),
          join: (topic, at) => {
            bridge.retain(topic, at);
            socket.joined = true;
          },
          interruptLive: (topic) => bridge.interrupt(topic),
        },
        conversations,
        headers: new Headers(),
        bus,
        conversationId: CONVERSATION,
        tenantId: "t",
        ...(watermark === undefined ? {} : { watermark: String(watermark) }),
        established: true,
      });
      return socket;
    },
  };
}

const seqs = (socket: FakeSocket) =>
  socket.frames.flatMap((f) => {
    const seq = activitySeqOf(f);
    return seq === undefined ? [] : [Number(seq)];
  });
const establishedWatermark = (socket: FakeSocket) => socket.frames[0]?.watermark;

/** Resolves once the opening stream waits for the live feed (its one timer). */
async function waitingForTheFeed() {
  for (let i = 0; i < 1000 && vi.getTimerCount() === 0; i++) await new Promise<void>((r) => queueMicrotask(r));
  expect(vi.getTimerCount()).toBe(1);
}

afterEach(() => {
  vi.useRealTimers();
});

describe("a conversation stream on a node whose frames come out of order", () => {
  it("loses nothing when a later seq reaches the node before an earlier one", async () => {
    const n = node();
    const socket = await n.open();
    n.commit(3);
    n.arrive(2, 3, 1);
    expect(seqs(socket)).toEqual([1, 2, 3]);
  });

  it("reads the hole from the log when a later seq arrives while the stream opens", async () => {
    const n = node();
    n.hooks.duringOpen = () => {
      n.commit(2);
      n.arrive(2);
    };
    const socket = await n.open(0);
    n.arrive(1); // late: the socket has it from the log
    n.commit(1);
    n.arrive(3);
    expect(seqs(socket)).toEqual([1, 2, 3]);
  });

  it("starts a new follower after frames committed but still on their way to this node", async () => {
    vi.useFakeTimers();
    const n = node();
    const first = await n.open();
    n.commit(3);
    n.arrive(1);
    const opening = n.open();
    await waitingForTheFeed();
    n.arrive(3, 2);
    const second = await opening;
    expect(establishedWatermark(second)).toBe("3");
    n.commit(1);
    n.arrive(4);
    expect(seqs(first)).toEqual([1, 2, 3, 4]);
    expect(seqs(second)).toEqual([4]);
  });

  it("holds a client that resumes ahead of this node's feed until the feed catches up", async () => {
    vi.useFakeTimers();
    const n = node();
    const first = await n.open();
    n.commit(5);
    n.arrive(1, 2);
    const opening = n.open(4); // the client saw up to 4 on another node
    await waitingForTheFeed();
    n.arrive(4, 3, 5);
    const second = await opening;
    n.commit(1);
    n.arrive(6);
    expect(seqs(first)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seqs(second)).toEqual([5, 6]);
    expect(first.interrupted).toBe(false);
  });

  it("sends the feed's followers back to the log when frames it waits for never come", async () => {
    vi.useFakeTimers();
    const n = node();
    const first = await n.open();
    n.commit(3);
    n.arrive(1); // 2 and 3 are lost on the way here
    const opening = n.open(3);
    await vi.advanceTimersByTimeAsync(1000);
    const second = await opening;
    expect(first.interrupted).toBe(true);
    expect(seqs(first)).toEqual([1]);
    n.commit(1);
    n.arrive(4);
    expect(seqs(second)).toEqual([4]);
  });

  it("sends followers back to the log when a hole in the feed does not fill", async () => {
    vi.useFakeTimers();
    const n = node();
    const socket = await n.open();
    n.commit(3);
    n.arrive(1, 3);
    await vi.advanceTimersByTimeAsync(500);
    expect(socket.interrupted).toBe(true);
    expect(seqs(socket)).toEqual([1]);
  });
});
