import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ActivitySchema, ActivityType } from "../../../gen/converger/v1/conversations_pb.js";
import {
  ActivityCreatedSchema,
  EventCreatedSchema,
  UploadCompletedSchema,
} from "../../../gen/converger/v1/envelopes_pb.js";
import { toApiJson } from "../rpc/json.js";
import { envelopePayload, readEnvelope } from "./envelopes.js";
import type { LogRecord } from "./event-log.js";

const at = timestampFromDate(new Date("2026-01-02T03:04:05.120Z"));
const activity = create(ActivitySchema, {
  id: "0b6f0a56-3f43-4c5e-9d1b-6a1d2f3e4a5b",
  conversationId: "5d1c3a9e-8f7b-4d6a-b2c1-0e9f8a7b6c5d",
  tenantId: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
  seq: 42n,
  type: ActivityType.MESSAGE,
  text: "hello",
  attachments: [{ fileId: "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", name: "a.png", contentType: "image/png", size: 3n }],
  from: { id: "u1", name: "" },
  metadata: { k: 1, nested: { ok: true } },
  createdAt: at,
  originChannelId: "7c6b5a49-3827-4165-9b4a-3c2d1e0f9a8b",
});

// Exactly what the code before envelopes.proto wrote into the outbox (JSONB) for each kind.
const ACTIVITY_JSON =
  '{"type":"activity.created","activity":{"id":"0b6f0a56-3f43-4c5e-9d1b-6a1d2f3e4a5b",' +
  '"conversation_id":"5d1c3a9e-8f7b-4d6a-b2c1-0e9f8a7b6c5d","tenant_id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",' +
  '"seq":"42","type":"message","text":"hello","attachments":[{"file_id":"1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",' +
  '"url":"","content_type":"image/png","name":"a.png","size":"3"}],"from":{"id":"u1","name":""},' +
  '"metadata":{"k":1,"nested":{"ok":true}},"created_at":"2026-01-02T03:04:05.120Z",' +
  '"origin_channel_id":"7c6b5a49-3827-4165-9b4a-3c2d1e0f9a8b"}}';
const EVENT_JSON =
  '{"type":"event.created","event":{"id":"e1","tenant_id":"t1","message":"deploy","timestamp":"2026-01-02T03:04:05.120Z"}}';
const UPLOAD_JSON = '{"type":"upload.completed","upload_id":"u-1"}';

const record = (payload: unknown): LogRecord => ({
  eventId: "ev",
  topic: "any",
  key: "k",
  tenantId: "t",
  payload: JSON.parse(JSON.stringify(payload)),
});

describe("event-log envelopes", () => {
  it("write the same JSON, key for key and in the same order, as before they had a schema", () => {
    const envelopes = [
      [create(ActivityCreatedSchema, { activity }), ACTIVITY_JSON],
      [
        create(EventCreatedSchema, { event: { id: "e1", tenantId: "t1", message: "deploy", timestamp: at } }),
        EVENT_JSON,
      ],
      [create(UploadCompletedSchema, { uploadId: "u-1" }), UPLOAD_JSON],
    ] as const;
    for (const [envelope, json] of envelopes) expect(JSON.stringify(envelopePayload(envelope))).toBe(json);
    // The expression the old writer used for the activity row.
    expect(JSON.stringify({ type: "activity.created", activity: toApiJson(ActivitySchema, activity) })).toBe(
      ACTIVITY_JSON,
    );
  });

  it("sets the type key from the schema, whatever the message's own type field holds", () => {
    const json = envelopePayload(create(UploadCompletedSchema, { type: "something.else", uploadId: "u-1" }));
    expect(JSON.stringify(json)).toBe(UPLOAD_JSON);
  });

  it("still reads rows the old code left in an outbox: the JSON is the same, and so is what it decodes to", () => {
    const old = readEnvelope(record(JSON.parse(ACTIVITY_JSON)));
    expect(old?.$typeName).toBe("converger.v1.ActivityCreated");
    if (old?.$typeName !== "converger.v1.ActivityCreated") return;
    expect(old.activity).toEqual(activity);
    // Re-encoding gives back the row byte for byte (delivery stores this activity JSON for webhooks).
    expect(JSON.stringify(envelopePayload(old))).toBe(ACTIVITY_JSON);
    const upload = readEnvelope(record(JSON.parse(UPLOAD_JSON)));
    expect(upload).toMatchObject({ $typeName: "converger.v1.UploadCompleted", uploadId: "u-1" });
    const event = readEnvelope(record(JSON.parse(EVENT_JSON)));
    expect(event).toMatchObject({ $typeName: "converger.v1.EventCreated", event: { id: "e1", message: "deploy" } });
  });

  it("reads envelopes of a later version that added fields, and passes over kinds it does not know", () => {
    const later = { ...JSON.parse(UPLOAD_JSON), added_later: { x: 1 } };
    expect(readEnvelope(record(later))).toMatchObject({ uploadId: "u-1" });
    expect(readEnvelope(record({ type: "conversation.archived", id: "c" }))).toBeUndefined();
    expect(readEnvelope(record("not an object"))).toBeUndefined();
  });

  it("refuses a known kind that does not decode, so the record is retried and dead-lettered, not dropped", () => {
    expect(() => readEnvelope(record({ type: "activity.created", activity: { seq: "0x10" } }))).toThrow(/seq/);
    expect(() => readEnvelope(record({ type: "upload.completed", upload_id: 7 }))).toThrow(/upload_id/);
  });

  it("leaves the record's payload as it was (other consumers of the batch read it too)", () => {
    const payload = JSON.parse(ACTIVITY_JSON);
    const rec = record(payload);
    readEnvelope(rec);
    expect(JSON.stringify(rec.payload)).toBe(ACTIVITY_JSON);
  });
});
