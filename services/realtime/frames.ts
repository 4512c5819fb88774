import { ConnectError } from "@connectrpc/connect";
import { ActivityType } from "../../gen/converger/v1/conversations_pb.js";
import {
  AckFrameSchema,
  ActivityFrameSchema,
  AuthFrameSchema,
  AuthOkFrameSchema,
  ConnectionEstablishedFrameSchema,
  DeliveryFrameSchema,
  ErrorFrameSchema,
  EventCreatedFrameSchema,
  PingFrameSchema,
  PongFrameSchema,
  PublishActivityFrameSchema,
  ReadFrameSchema,
  SubscribeFrameSchema,
  TypingFrameSchema,
  UnsubscribeFrameSchema,
} from "../../gen/converger/v1/frames_pb.js";
import type { BusFrame } from "../common/events/bus.js";
import { createTaggedCodec } from "../common/events/tagged-json.js";
import { parseSeq } from "../common/rpc/int64.js";
import { firstNulPath } from "../common/rpc/nul.js";
import { isUuid } from "../common/rpc/validation.js";

/** Close codes of design.md §4, in one table. */
export const CLOSE = {
  goingAway: 1001,
  tooBig: 1009,
  badToken: 4401,
  forbidden: 4403,
  tokenExpired: 4408,
  rateLimited: 4429,
} as const;

const clientFrames = createTaggedCodec([
  PublishActivityFrameSchema,
  SubscribeFrameSchema,
  UnsubscribeFrameSchema,
  AuthFrameSchema,
  PingFrameSchema,
]);

const serverFrames = createTaggedCodec([
  ConnectionEstablishedFrameSchema,
  ActivityFrameSchema,
  TypingFrameSchema,
  ReadFrameSchema,
  DeliveryFrameSchema,
  EventCreatedFrameSchema,
  AckFrameSchema,
  ErrorFrameSchema,
  PongFrameSchema,
  AuthOkFrameSchema,
]);

/** What a client may send (frames.proto, client → server). */
export type ClientFrame = Parameters<typeof clientFrames.encode>[0];
/** What the edge sends (frames.proto, server → client). */
export type ServerFrame = Parameters<typeof serverFrames.encode>[0];

/** The JSON text payload of a server frame: the same shape as a bus frame. */
export const encodeServerFrame = (frame: ServerFrame): BusFrame => serverFrames.encode(frame);
export const decodeServerFrame = (json: unknown): ServerFrame => serverFrames.decode(json);

export class FrameError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly clientId?: string,
  ) {
    super(message);
  }
}

const PUBLISHABLE = new Set([ActivityType.MESSAGE, ActivityType.EVENT, ActivityType.TYPING]);

/** Parses and checks one client frame; throws FrameError (answered as an error frame, socket kept). */
export function parseClientFrame(data: ArrayBuffer): ClientFrame {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(data).toString("utf8"));
  } catch {
    throw new FrameError("invalid_argument", "frame is not JSON");
  }
  if (!isObject(json)) throw new FrameError("invalid_argument", "frame must be a JSON object");
  const raw = json;
  const clientId =
    raw.type === "activity" && typeof raw.client_id === "string" && !raw.client_id.includes("\u0000")
      ? raw.client_id
      : undefined;
  // Checked once for the whole frame: no string of it may reach PostgreSQL or a peer with U+0000.
  const nul = firstNulPath(raw, "");
  if (nul !== undefined) throw new FrameError("invalid_argument", `${nul}: must not contain U+0000`, clientId);
  if (raw.watermark === "") delete raw.watermark; // an empty watermark has always meant none
  let frame: ClientFrame;
  try {
    frame = clientFrames.decode(raw);
  } catch (error) {
    throw new FrameError("invalid_argument", ConnectError.from(error).rawMessage, clientId);
  }
  checkClientFrame(frame);
  return frame;
}

/** What the schema cannot say: required values, UUIDs, ranges; and the default activity_type (message). */
function checkClientFrame(frame: ClientFrame): void {
  switch (frame.$typeName) {
    case "converger.v1.AuthFrame":
      if (!frame.token) throw new FrameError("invalid_argument", "token: is required");
      return;
    case "converger.v1.SubscribeFrame":
    case "converger.v1.UnsubscribeFrame":
      if (!isUuid(frame.conversationId)) throw new FrameError("invalid_argument", "conversation_id: must be a UUID");
      if ("watermark" in frame && frame.watermark !== undefined && frame.watermark < 0n)
        throw new FrameError("invalid_argument", "watermark: must be a seq");
      return;
    case "converger.v1.PublishActivityFrame": {
      const { clientId } = frame;
      if (clientId.length === 0 || clientId.length > 255) {
        throw new FrameError("invalid_argument", "client_id: is required (1–255 characters)");
      }
      frame.activityType ||= ActivityType.MESSAGE;
      if (!PUBLISHABLE.has(frame.activityType)) {
        throw new FrameError("invalid_argument", "activity_type: must be message, event or typing", clientId);
      }
      if (frame.conversationId !== undefined && !isUuid(frame.conversationId)) {
        throw new FrameError("invalid_argument", "conversation_id: must be a UUID", clientId);
      }
      return;
    }
  }
}

/** A watermark as a decimal string (number or string accepted), or undefined. */
export function watermarkOf(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const text = String(value);
  if (parseSeq(text) === undefined) throw new FrameError("invalid_argument", "watermark: must be a seq");
  return text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
