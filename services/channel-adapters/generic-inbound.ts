import type { JsonObject } from "@bufbuild/protobuf";
import { type InboundBatch, InboundError, type InboundRequest, parseJsonBody } from "./adapter.js";

const MAX_ID = 200;

/**
 * Converger's own inbound body (design.md §3), taken by channels without a
 * provider format: `{external_id,message_id,from:{id,name?},type?,text?,attachments?,metadata?}`.
 */
export function parseGenericInbound(request: InboundRequest): InboundBatch {
  const body = parseJsonBody(request);
  if (!isObject(body)) throw new InboundError("body must be a JSON object");
  const from = body.from;
  if (!isObject(from)) throw new InboundError("from: is required");
  const type = body.type ?? "message";
  if (type !== "message" && type !== "event") throw new InboundError("type: must be message or event");
  const attachments = body.attachments ?? [];
  if (!Array.isArray(attachments) || !attachments.every(isObject)) {
    throw new InboundError("attachments: must be an array of objects");
  }
  const metadata = body.metadata ?? {};
  if (!isObject(metadata)) throw new InboundError("metadata: must be an object");
  const text = body.text ?? "";
  if (typeof text !== "string") throw new InboundError("text: must be a string");
  return {
    messages: [
      {
        externalId: id(body.external_id, "external_id"),
        messageId: id(body.message_id, "message_id"),
        from: { id: id(from.id, "from.id"), ...(typeof from.name === "string" ? { name: from.name } : {}) },
        type,
        text,
        attachments: attachments as JsonObject[],
        metadata: metadata as JsonObject,
      },
    ],
    statuses: [],
  };
}

function id(value: unknown, name: string): string {
  if (typeof value !== "string" || !value.trim() || value.length > MAX_ID) {
    throw new InboundError(`${name}: must be a non-empty string of at most ${MAX_ID} characters`);
  }
  return value;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
