import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ActivityType } from "../../gen/converger/v1/conversations_pb.js";
import {
  AckFrameSchema,
  AuthOkFrameSchema,
  ConnectionEstablishedFrameSchema,
  ErrorFrameSchema,
  PongFrameSchema,
} from "../../gen/converger/v1/frames_pb.js";
import {
  type ClientFrame,
  encodeServerFrame,
  FrameError,
  parseClientFrame,
  type ServerFrame,
  watermarkOf,
} from "./frames.js";

const bytes = (frame: unknown) =>
  new TextEncoder().encode(typeof frame === "string" ? frame : JSON.stringify(frame)).buffer as ArrayBuffer;
const parse = (frame: unknown): ClientFrame => parseClientFrame(bytes(frame));
const refusal = (frame: unknown): FrameError => {
  try {
    parse(frame);
  } catch (error) {
    if (error instanceof FrameError) return error;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(frame)}`);
};

describe("watermarkOf", () => {
  it("takes a seq as number or string, up to the int64 maximum", () => {
    expect(watermarkOf(0)).toBe("0");
    expect(watermarkOf("9223372036854775807")).toBe("9223372036854775807");
    expect(watermarkOf(undefined)).toBeUndefined();
  });

  it("refuses values past int64 and non-decimal forms with an invalid_argument frame error", () => {
    for (const value of ["9223372036854775808", "9999999999999999999", "0x10", "12abc", -1]) {
      expect(() => watermarkOf(value), String(value)).toThrow(FrameError);
    }
  });
});

describe("server frames", () => {
  // Each frame as the edge wrote it before frames.proto (object literals in edge.ts, stream.ts, session-frames.ts).
  const FRAMES: [ServerFrame, string][] = [
    [
      create(ConnectionEstablishedFrameSchema, { conversationId: "c1", tenantId: "t1", watermark: 12n }),
      '{"type":"connection_established","conversation_id":"c1","tenant_id":"t1","watermark":"12"}',
    ],
    [
      create(ConnectionEstablishedFrameSchema, { tenantId: "t1", watermark: 0n }),
      '{"type":"connection_established","tenant_id":"t1","watermark":"0"}',
    ],
    [
      create(AckFrameSchema, {
        clientId: "k1",
        activity: { id: "a1", conversationId: "c1", tenantId: "t1", seq: 1n, type: ActivityType.MESSAGE, metadata: {} },
      }),
      '{"type":"ack","client_id":"k1","activity":{"id":"a1","conversation_id":"c1","tenant_id":"t1","seq":"1",' +
        '"type":"message","text":"","attachments":[],"metadata":{}}}',
    ],
    [
      create(ErrorFrameSchema, { code: "not_found", message: "gone" }),
      '{"type":"error","code":"not_found","message":"gone"}',
    ],
    [
      create(ErrorFrameSchema, { code: "resource_exhausted", message: "slow down", clientId: "k2", retryAfter: 3 }),
      '{"type":"error","code":"resource_exhausted","message":"slow down","client_id":"k2","retry_after":3}',
    ],
    [create(PongFrameSchema), '{"type":"pong"}'],
    [
      create(AuthOkFrameSchema, { expiresAt: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)).toISOString() }),
      '{"type":"auth_ok","expires_at":"2026-01-02T03:04:05.000Z"}',
    ],
  ];

  it("encode to the same JSON, key for key and in order, as before they had a schema", () => {
    for (const [frame, json] of FRAMES) expect(JSON.stringify(encodeServerFrame(frame))).toBe(json);
  });
});

describe("parseClientFrame", () => {
  it("decodes every client frame of design.md §4 with its schema", () => {
    expect(parse({ type: "ping" }).$typeName).toBe("converger.v1.PingFrame");
    expect(parse({ type: "auth", token: "jwt" })).toMatchObject({ $typeName: "converger.v1.AuthFrame", token: "jwt" });
    const id = "5d1c3a9e-8f7b-4d6a-b2c1-0e9f8a7b6c5d";
    expect(parse({ type: "subscribe", conversation_id: id, watermark: 7 })).toMatchObject({
      conversationId: id,
      watermark: 7n,
    });
    expect(parse({ type: "subscribe", conversation_id: id, watermark: "7" })).toMatchObject({ watermark: 7n });
    for (const none of ["", null])
      expect(parse({ type: "subscribe", conversation_id: id, watermark: none })).not.toHaveProperty(
        "watermark",
        expect.anything(),
      );
    expect(parse({ type: "unsubscribe", conversation_id: id }).$typeName).toBe("converger.v1.UnsubscribeFrame");
    const published = parse({
      type: "activity",
      client_id: "k1",
      conversation_id: id,
      activity_type: "event",
      text: "hi",
      attachments: [{ file_id: id }, { url: "https://example.com/a.png", content_type: "image/png" }],
      metadata: { k: [1, "two"] },
    });
    expect(published).toMatchObject({
      $typeName: "converger.v1.PublishActivityFrame",
      clientId: "k1",
      conversationId: id,
      activityType: ActivityType.EVENT,
      text: "hi",
      attachments: [{ fileId: id }, { url: "https://example.com/a.png", contentType: "image/png" }],
      metadata: { k: [1, "two"] },
    });
  });

  it("defaults activity_type to message and ignores keys it does not know, as the edge always did", () => {
    const frame = parse({ type: "activity", client_id: "k1", text: "hi", sent_by: "sdk 1.2" });
    expect(frame).toMatchObject({ activityType: ActivityType.MESSAGE, text: "hi" });
    expect(frame).not.toHaveProperty("sent_by");
  });

  it("refuses bad frames with invalid_argument, naming the field and the client_id of a publish", () => {
    const cases: [unknown, RegExp, string?][] = [
      ["not json", /not JSON/],
      [[1, 2], /JSON object/],
      [{ type: "dance", client_id: "x" }, /^type: unknown frame type$/],
      [{ type: "activity", text: "no client id" }, /client_id/],
      [{ type: "activity", client_id: "x", activity_type: "shout" }, /activity_type/, "x"],
      [{ type: "activity", client_id: "x", activity_type: 9 }, /activity_type/, "x"],
      [{ type: "activity", client_id: "x", text: 5 }, /text/, "x"],
      [{ type: "activity", client_id: "x", conversation_id: "nope" }, /conversation_id/, "x"],
      [{ type: "activity", client_id: "x", text: "a\u0000b" }, /U\+0000/, "x"],
      [{ type: "subscribe", conversation_id: "nope" }, /conversation_id/],
      [{ type: "subscribe", conversation_id: "5d1c3a9e-8f7b-4d6a-b2c1-0e9f8a7b6c5d", watermark: -1 }, /watermark/],
      [{ type: "subscribe", conversation_id: "5d1c3a9e-8f7b-4d6a-b2c1-0e9f8a7b6c5d", watermark: "0x10" }, /watermark/],
      [{ type: "auth", token: "" }, /token/],
    ];
    for (const [frame, message, clientId] of cases) {
      const error = refusal(frame);
      expect(error.code, JSON.stringify(frame)).toBe("invalid_argument");
      expect(error.message, JSON.stringify(frame)).toMatch(message);
      expect(error.clientId, JSON.stringify(frame)).toBe(clientId);
    }
  });
});
