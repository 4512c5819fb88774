import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  CreateActivityRequestSchema,
  CreateConversationRequestSchema,
} from "../../../gen/converger/v1/conversations_pb.js";
import { ReceiveInboundRequestSchema } from "../../../gen/converger/v1/delivery_pb.js";
import { FieldViolationSchema } from "../../../gen/converger/v1/options_pb.js";
import { validateMessage } from "./validation.js";

const CONVERSATION = "6f1c1f5e-8a4b-4c43-9d8e-0c1b2a3d4e5f";

function violations(run: () => void): { field: string; description: string }[] {
  try {
    run();
  } catch (error) {
    return ConnectError.from(error)
      .findDetails(FieldViolationSchema)
      .map(({ field, description }) => ({ field, description }));
  }
  return [];
}

describe("U+0000 in requests", () => {
  it("names every string field holding U+0000, nested, repeated, in Struct keys and values", () => {
    const activity = create(CreateActivityRequestSchema, {
      conversationId: CONVERSATION,
      type: 1,
      text: "a\u0000b",
      from: { id: "u", name: "Ada\u0000" },
      attachments: [{ url: "https://x/\u0000" }],
      metadata: { ok: "fine", bad: "x\u0000", "k\u0000": 1, list: ["y", "z\u0000"], deep: { v: "\u0000" } },
    });
    const fields = violations(() => validateMessage(CreateActivityRequestSchema, activity)).map((v) => v.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "text",
        "from.name",
        "attachments[0].url",
        "metadata.bad",
        "metadata.k\\u0000",
        "metadata.list[1]",
        "metadata.deep.v",
      ]),
    );
  });

  it("checks repeated strings and fields without rules", () => {
    const conversation = create(CreateConversationRequestSchema, {
      channelId: CONVERSATION,
      members: ["ok", "b\u0000d"],
    });
    expect(violations(() => validateMessage(CreateConversationRequestSchema, conversation))).toEqual([
      { field: "members[1]", description: "must not contain U+0000" },
    ]);
  });

  it("accepts the same request without U+0000", () => {
    const activity = create(CreateActivityRequestSchema, {
      conversationId: CONVERSATION,
      type: 1,
      text: "hello",
      metadata: { a: ["b"] },
    });
    expect(() => validateMessage(CreateActivityRequestSchema, activity)).not.toThrow();
  });

  it("checks map keys and values", () => {
    const inbound = create(ReceiveInboundRequestSchema, {
      channelId: CONVERSATION,
      headers: { "x-a": "1\u0000", "x\u0000b": "2" },
    });
    expect(violations(() => validateMessage(ReceiveInboundRequestSchema, inbound))).toEqual([
      { field: "headers.x-a", description: "must not contain U+0000" },
      { field: "headers.x\\u0000b", description: "key must not contain U+0000" },
    ]);
  });
});
