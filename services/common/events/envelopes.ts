import {
  ActivityCreatedSchema,
  EventCreatedSchema,
  UploadCompletedSchema,
} from "../../../gen/converger/v1/envelopes_pb.js";
import type { LogRecord } from "./event-log.js";
import { createTaggedCodec, type TaggedJson } from "./tagged-json.js";

/** Event-log topics and the envelope each carries (envelopes.proto). */
export const ACTIVITIES_TOPIC = "converger.activities"; // ActivityCreated, keyed by conversation
export const EVENTS_TOPIC = "converger.events"; // EventCreated, keyed by tenant
export const UPLOADS_TOPIC = "converger.uploads"; // UploadCompleted, keyed by upload

const codec = createTaggedCodec([ActivityCreatedSchema, EventCreatedSchema, UploadCompletedSchema]);

export type Envelope = Parameters<typeof codec.encode>[0];

/** The outbox payload (JSONB) of an envelope built with `create(…Schema, {…})`. */
export function envelopePayload(envelope: Envelope): TaggedJson {
  return codec.encode(envelope);
}

/**
 * The envelope of a log record, or undefined for a kind this version does not
 * know (a newer producer's), which readers pass over as they always did. A
 * known kind that does not decode throws, so the record is retried and then
 * dead-lettered rather than dropped.
 */
export function readEnvelope(record: LogRecord): Envelope | undefined {
  const { payload } = record;
  const type = typeof payload === "object" && payload !== null && "type" in payload ? payload.type : undefined;
  if (typeof type !== "string" || !codec.knows(type)) return undefined;
  return codec.decode(payload);
}
