import { createHash } from "node:crypto";
import { create, type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  ActivityType,
  type CreateActivityRequest,
  CreateActivityRequestSchema,
  SenderSchema,
} from "../../gen/converger/v1/conversations_pb.js";
import type { Principal } from "../common/access/context.js";
import { invalidField } from "../common/rpc/errors.js";

// The rules of a posted activity that need no stored state.

const MAX_METADATA_BYTES = 16 * 1024;

/** End users speak as their token's user; servers must say who speaks. */
export function senderOf(principal: Principal, req: CreateActivityRequest): { id: string; name: string } {
  if (principal.kind === "end_user") return { id: principal.userId, name: principal.userName };
  if (!req.from?.id) throw invalidField("from.id", "is required");
  return { id: req.from.id, name: req.from.name };
}

export function checkActivity(req: CreateActivityRequest): void {
  if (req.type === ActivityType.MESSAGE && !req.text.trim() && req.attachments.length === 0) {
    throw invalidField("text", "is required for a message without attachments");
  }
  req.attachments.forEach((a, i) => {
    if (a.fileId) return;
    if (!a.url) throw invalidField(`attachments[${i}]`, "needs file_id or url");
    if (!/^https?:\/\/[^\s]+$/i.test(a.url)) throw invalidField(`attachments[${i}].url`, "must be an http(s) URL");
  });
  checkMetadata("metadata", req.metadata);
}

/** Metadata stays small: it travels with every read and every log record of the activity. */
export function checkMetadata(field: string, metadata: JsonObject | undefined): void {
  if (metadata && Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES) {
    throw invalidField(field, `must be at most ${MAX_METADATA_BYTES} bytes of JSON`);
  }
}

/** What makes two requests "the same" for an idempotency key: the body, keys sorted. */
export function requestHash(req: CreateActivityRequest, from: { id: string; name: string }): Buffer {
  const body = toJson(CreateActivityRequestSchema, { ...req, idempotencyKey: "", from: create(SenderSchema, from) });
  return createHash("sha256").update(canonical(body)).digest();
}

function canonical(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as JsonObject)[k] as JsonValue)}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}
