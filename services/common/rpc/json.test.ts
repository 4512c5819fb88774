import { create } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  ActivitySchema,
  ActivityType,
  CreateActivityRequestSchema,
  MarkReadRequestSchema,
} from "../../../gen/converger/v1/conversations_pb.js";
import { UploadState, UploadStatusSchema } from "../../../gen/converger/v1/uploads_pb.js";
import { fromApiJson, toApiJson } from "./json.js";

describe("public JSON mapping", () => {
  it("renders proto field names, int64 as strings and enums as lowercase words", () => {
    const json = toApiJson(
      ActivitySchema,
      create(ActivitySchema, { seq: 42n, type: ActivityType.MESSAGE, conversationId: "c" }),
    );
    expect(json).toMatchObject({ seq: "42", type: "message", conversation_id: "c", attachments: [] });
  });

  it("renders upload states in capitals, as the seeds spell them", () => {
    expect(toApiJson(UploadStatusSchema, create(UploadStatusSchema, { status: UploadState.MERGING }))).toMatchObject({
      status: "MERGING",
    });
  });

  it("reads enum words, full enum names and int64 as number or string", () => {
    expect(fromApiJson(CreateActivityRequestSchema, { type: "event" }).type).toBe(ActivityType.EVENT);
    expect(fromApiJson(CreateActivityRequestSchema, { type: "ACTIVITY_TYPE_TYPING" }).type).toBe(ActivityType.TYPING);
  });

  it("names the field of an unknown enum word and of an unknown key", () => {
    const bad = (json: Record<string, unknown>) => {
      try {
        fromApiJson(CreateActivityRequestSchema, json as never);
      } catch (error) {
        return (error as ConnectError).rawMessage;
      }
      throw new Error("accepted");
    };
    expect(bad({ type: "shout" })).toMatch(/^type: unknown value "shout" \(expected one of: message, event, typing\)/);
    expect(bad({ type: "unspecified" })).toMatch(/^type: unknown value/);
    expect(bad({ attachments: [{ colour: 1 }] })).toMatch(/colour/);
    expect(bad({ text: 5 })).toMatch(/^text: /);
  });

  it("names integer fields given past their range or not as decimal digits", () => {
    const bad = (json: Record<string, unknown>) => {
      try {
        fromApiJson(MarkReadRequestSchema, json as never);
      } catch (error) {
        return (error as ConnectError).rawMessage;
      }
      throw new Error("accepted");
    };
    for (const watermark of ["9223372036854775808", "-9223372036854775809", "0x10", "12abc", " 5", "1e400"]) {
      expect(bad({ watermark }), watermark).toMatch(/^watermark: /);
    }
    expect(fromApiJson(MarkReadRequestSchema, { watermark: "9223372036854775807" }).watermark).toBe(
      9223372036854775807n,
    );
  });
});
