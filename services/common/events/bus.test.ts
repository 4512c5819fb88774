import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ActivitySchema, ActivityType } from "../../../gen/converger/v1/conversations_pb.js";
import { DeliveryStatus } from "../../../gen/converger/v1/delivery_pb.js";
import {
  ActivityFrameSchema,
  DeliveryFrameSchema,
  DirectoryChangedFrameSchema,
  EventCreatedFrameSchema,
  GapFrameSchema,
  ReadFrameSchema,
  SigningKeysChangedFrameSchema,
  TypingFrameSchema,
} from "../../../gen/converger/v1/frames_pb.js";
import { type BusFrame, type BusMessage, createLocalBus, decodeBusFrame, encodeBusFrame } from "./bus.js";

const at = timestampFromDate(new Date("2026-01-02T03:04:05.120Z"));
const activity = create(ActivitySchema, {
  id: "a1",
  conversationId: "c1",
  tenantId: "t1",
  seq: 9n,
  type: ActivityType.EVENT,
  text: "",
  from: { id: "u1", name: "Ann" },
  metadata: {},
  createdAt: at,
});
const ACTIVITY =
  '{"id":"a1","conversation_id":"c1","tenant_id":"t1","seq":"9","type":"event","text":"","attachments":[],' +
  '"from":{"id":"u1","name":"Ann"},"metadata":{},"created_at":"2026-01-02T03:04:05.120Z"}';

// Each frame as the code before frames.proto published it (object literals in the producers).
const FRAMES: [BusMessage, string][] = [
  [create(ActivityFrameSchema, { activity }), `{"type":"activity","activity":${ACTIVITY}}`],
  [
    create(TypingFrameSchema, { conversationId: "c1", from: { id: "u1", name: "" } }),
    '{"type":"typing","conversation_id":"c1","from":{"id":"u1","name":""}}',
  ],
  [
    create(ReadFrameSchema, { conversationId: "c1", userId: "u1", readUpTo: 0n }),
    '{"type":"read","conversation_id":"c1","user_id":"u1","read_up_to":"0"}',
  ],
  [
    create(DeliveryFrameSchema, {
      conversationId: "c1",
      delivery: {
        id: "d1",
        activityId: "a1",
        channelId: "ch1",
        status: DeliveryStatus.PENDING,
        attempts: 2,
        lastError: "HTTP 500",
        nextAttemptAt: at,
        createdAt: at,
        updatedAt: at,
      },
    }),
    '{"type":"delivery","conversation_id":"c1","delivery":{"id":"d1","activity_id":"a1","channel_id":"ch1",' +
      '"status":"pending","attempts":2,"last_error":"HTTP 500","next_attempt_at":"2026-01-02T03:04:05.120Z",' +
      '"created_at":"2026-01-02T03:04:05.120Z","updated_at":"2026-01-02T03:04:05.120Z"}}',
  ],
  [
    create(EventCreatedFrameSchema, { event: { id: "e1", tenantId: "t1", message: "m", timestamp: at } }),
    '{"type":"event_created","event":{"id":"e1","tenant_id":"t1","message":"m","timestamp":"2026-01-02T03:04:05.120Z"}}',
  ],
  [create(SigningKeysChangedFrameSchema), '{"type":"signing_keys_changed"}'],
  [create(DirectoryChangedFrameSchema), '{"type":"directory_changed"}'],
  [create(GapFrameSchema), '{"type":"gap"}'],
];

describe("bus frames", () => {
  it("encode to the same JSON, key for key and in order, as the frames published before they had a schema", () => {
    for (const [frame, json] of FRAMES) expect(JSON.stringify(encodeBusFrame(frame))).toBe(json);
  });

  it("decode back to the message they were made from, without touching the JSON", () => {
    for (const [frame, json] of FRAMES) {
      const parsed: BusFrame = JSON.parse(json);
      expect(decodeBusFrame(parsed)).toEqual(encodeAndType(frame));
      expect(JSON.stringify(parsed)).toBe(json);
    }
  });

  it("refuse JSON that is not a bus frame", () => {
    expect(() => decodeBusFrame({ type: "ack" })).toThrow(/unknown frame type/);
    expect(() => decodeBusFrame({ type: "read", read_up_to: "x" })).toThrow(/read_up_to/);
  });

  it("reach local subscribers as that JSON, one encoding shared by all of them", () => {
    const bus = createLocalBus((error) => {
      throw error;
    });
    const seen: BusFrame[] = [];
    bus.subscribe("t", (frame) => seen.push(frame));
    bus.subscribe("t", (frame) => seen.push(frame));
    bus.publish("t", create(ReadFrameSchema, { conversationId: "c1", userId: "u1", readUpTo: 3n }));
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBe(seen[1]);
    expect(seen[0]).toEqual({ type: "read", conversation_id: "c1", user_id: "u1", read_up_to: "3" });
  });
});

/** A decoded frame carries its json_type in `type`, as the JSON did. */
function encodeAndType(frame: BusMessage): BusMessage {
  return { ...frame, type: encodeBusFrame(frame).type };
}
