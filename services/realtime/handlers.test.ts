import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  type Activity,
  ActivitySchema,
  ActivityType,
  ConversationsService,
} from "../../gen/converger/v1/conversations_pb.js";
import { DeliveryStatus } from "../../gen/converger/v1/delivery_pb.js";
import {
  ActivityFrameSchema,
  DeliveryFrameSchema,
  ReadFrameSchema,
  TypingFrameSchema,
} from "../../gen/converger/v1/frames_pb.js";
import { RealtimeService, type StreamFrame } from "../../gen/converger/v1/realtime_pb.js";
import type { Principal } from "../common/access/context.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { conversationTopic, createLocalBus } from "../common/events/bus.js";
import { realtimeImpl } from "./subscribe-rpc.js";

const TENANT = randomUUID();
const CONVERSATION = randomUUID();
const TOKEN = "Bearer caller-token";

function setup() {
  // Runs inside the stream's opening, after it holds live frames and before it reads the watermark.
  const hooks: { duringOpen?: () => void } = {};
  const bus = createLocalBus((error) => {
    throw error;
  });
  const stored: Activity[] = [];
  const credentials: (string | null)[] = [];
  const activity = (seq: number) =>
    create(ActivitySchema, {
      id: randomUUID(),
      conversationId: CONVERSATION,
      tenantId: TENANT,
      seq: BigInt(seq),
      type: ActivityType.MESSAGE,
      text: `#${seq}`,
      createdAt: timestampNow(),
    });
  const commit = (seq: number) => {
    const row = activity(seq);
    stored.push(row);
    bus.publish(conversationTopic(CONVERSATION), create(ActivityFrameSchema, { activity: row }));
  };
  // The conversations service, which authorizes the stream with the caller's own credentials.
  const conversations = createRouterTransport(({ service }) =>
    service(ConversationsService, {
      getConversation(req, ctx) {
        credentials.push(ctx.requestHeader.get("authorization"));
        if (req.id !== CONVERSATION) throw new ConnectError("conversation not found", Code.NotFound);
        const lastSeq = BigInt(stored.length);
        hooks.duringOpen?.();
        return { id: req.id, tenantId: TENANT, lastSeq };
      },
      listActivities(req) {
        const after = BigInt(req.watermark || "0");
        const page = stored.filter((a) => a.seq > after).slice(0, req.limit);
        return { activities: page, watermark: page.at(-1)?.seq ?? after };
      },
    }),
  );
  for (let seq = 1; seq <= 2; seq++) stored.push(activity(seq));
  const as = createPrincipalTransports((router) =>
    router.service(RealtimeService, realtimeImpl({ conversationsTransport: conversations, bus })),
  );
  const client = (principal: Principal) => createClient(RealtimeService, as(principal));
  return { hooks, bus, commit, credentials, client, server: client({ kind: "api_key", tenantId: TENANT }) };
}

/** Reads frames until one satisfies `last`, then ends the stream. */
async function framesUntil(
  stream: AsyncIterable<StreamFrame>,
  last: (frame: StreamFrame) => boolean,
  onFrame?: (n: number) => void,
) {
  const frames: StreamFrame[] = [];
  for await (const frame of stream) {
    frames.push(frame);
    onFrame?.(frames.length);
    if (last(frame)) break;
  }
  return frames;
}

const seqOf = (frame: StreamFrame) => (frame.frame.case === "activity" ? frame.frame.value.seq : undefined);
const headers = { authorization: TOKEN };

describe("RealtimeService.Subscribe handler", () => {
  it("replays after the watermark, then streams live frames, forwarding the caller's credentials", async () => {
    const s = setup();
    const abort = new AbortController();
    const stream = s.server.subscribe(
      { conversationId: CONVERSATION, watermark: 1n },
      { headers, signal: abort.signal },
    );
    const frames = await framesUntil(
      stream,
      (f) => seqOf(f) === 3n,
      (n) => n === 1 && s.commit(3),
    );
    abort.abort();
    expect(frames.map(seqOf)).toEqual([2n, 3n]);
    expect(s.credentials).toEqual([TOKEN]);
  });

  it("sends an activity committed while the stream opens exactly once", async () => {
    const s = setup();
    // Committed between the watermark read and the replay: both live and stored.
    s.hooks.duringOpen = () => s.commit(3);
    const abort = new AbortController();
    const stream = s.server.subscribe(
      { conversationId: CONVERSATION, watermark: 0n },
      { headers, signal: abort.signal },
    );
    // Seq 4 is the sentinel: once it is in, a duplicate 3 would have come before it.
    const frames = await framesUntil(
      stream,
      (f) => seqOf(f) === 4n,
      (n) => n === 3 && s.commit(4),
    );
    abort.abort();
    expect(frames.map(seqOf)).toEqual([1n, 2n, 3n, 4n]);
  });

  it("maps typing and read frames, held or live, and drops frames the stream has no case for", async () => {
    const s = setup();
    const topic = conversationTopic(CONVERSATION);
    const from = { id: "alice", name: "Alice" };
    s.hooks.duringOpen = () => s.bus.publish(topic, create(TypingFrameSchema, { conversationId: CONVERSATION, from }));
    const abort = new AbortController();
    const stream = s.server.subscribe({ conversationId: CONVERSATION }, { headers, signal: abort.signal });
    const live = () => {
      s.bus.publish(
        topic,
        create(DeliveryFrameSchema, {
          conversationId: CONVERSATION,
          delivery: { id: randomUUID(), status: DeliveryStatus.PENDING },
        }),
      );
      s.bus.publish(topic, create(ReadFrameSchema, { conversationId: CONVERSATION, userId: "bob", readUpTo: 2n }));
      s.commit(3); // the sentinel: anything published before it has arrived by then
    };
    const frames = await framesUntil(
      stream,
      (f) => seqOf(f) === 3n,
      (n) => n === 1 && live(),
    );
    abort.abort();
    expect(frames.map((f) => f.frame.case)).toEqual(["typing", "read", "activity"]);
    expect(frames[0]?.frame.value).toMatchObject({ conversationId: CONVERSATION, from });
    expect(frames[1]?.frame.value).toMatchObject({ userId: "bob", readUpTo: 2n });
  });

  it("refuses an end user another conversation, and passes on the conversations service's not found", async () => {
    const s = setup();
    const user = s.client({
      kind: "end_user",
      tenantId: TENANT,
      userId: "u",
      userName: "",
      conversationId: randomUUID(),
      channelId: "",
    });
    const first = (call: AsyncIterable<StreamFrame>) => call[Symbol.asyncIterator]().next();
    await expect(first(user.subscribe({ conversationId: CONVERSATION }))).rejects.toMatchObject({
      code: Code.NotFound,
    });
    expect(s.credentials).toEqual([]);
    await expect(first(s.server.subscribe({ conversationId: randomUUID() }, { headers }))).rejects.toMatchObject({
      code: Code.NotFound,
    });
    await expect(first(s.server.subscribe({ conversationId: "nope" }))).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
  });
});
