import { parseSeq } from "../common/rpc/int64.js";
import { firstNulPath } from "../common/rpc/nul.js";

/** Close codes of design.md §4, in one table. */
export const CLOSE = {
  goingAway: 1001,
  tooBig: 1009,
  badToken: 4401,
  forbidden: 4403,
  tokenExpired: 4408,
  rateLimited: 4429,
} as const;

export type ClientFrame =
  | {
      type: "activity";
      client_id: string;
      /** Needed only by tokens that may write to several conversations. */
      conversation_id?: string;
      activity_type: "message" | "event" | "typing";
      text?: string;
      attachments?: unknown[];
      metadata?: Record<string, unknown>;
    }
  | { type: "subscribe" | "unsubscribe"; conversation_id: string; watermark?: string }
  | { type: "auth"; token: string }
  | { type: "ping" };

export class FrameError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly clientId?: string,
  ) {
    super(message);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Parses and checks one client frame; throws FrameError (answered as an error frame, socket kept). */
export function parseClientFrame(data: ArrayBuffer): ClientFrame {
  let frame: Record<string, unknown>;
  try {
    frame = JSON.parse(Buffer.from(data).toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new FrameError("invalid_argument", "frame is not JSON");
  }
  if (!frame || typeof frame !== "object" || Array.isArray(frame))
    throw new FrameError("invalid_argument", "frame must be a JSON object");
  // Checked once for the whole frame: no string of it may reach PostgreSQL or a peer with U+0000.
  const nul = firstNulPath(frame, "");
  if (nul !== undefined) {
    const clientId =
      typeof frame.client_id === "string" && !frame.client_id.includes("\u0000") ? frame.client_id : undefined;
    throw new FrameError("invalid_argument", `${nul}: must not contain U+0000`, clientId);
  }
  switch (frame.type) {
    case "ping":
      return { type: "ping" };
    case "auth":
      if (typeof frame.token !== "string" || !frame.token)
        throw new FrameError("invalid_argument", "token: is required");
      return { type: "auth", token: frame.token };
    case "subscribe":
    case "unsubscribe": {
      if (typeof frame.conversation_id !== "string" || !UUID.test(frame.conversation_id)) {
        throw new FrameError("invalid_argument", "conversation_id: must be a UUID");
      }
      return { type: frame.type, conversation_id: frame.conversation_id, watermark: watermarkOf(frame.watermark) };
    }
    case "activity": {
      const clientId = frame.client_id;
      if (typeof clientId !== "string" || clientId.length === 0 || clientId.length > 255) {
        throw new FrameError("invalid_argument", "client_id: is required (1–255 characters)");
      }
      const type = frame.activity_type ?? "message";
      if (type !== "message" && type !== "event" && type !== "typing") {
        throw new FrameError("invalid_argument", "activity_type: must be message, event or typing", clientId);
      }
      const conversationId = frame.conversation_id;
      if (conversationId !== undefined && (typeof conversationId !== "string" || !UUID.test(conversationId))) {
        throw new FrameError("invalid_argument", "conversation_id: must be a UUID", clientId);
      }
      return {
        type: "activity",
        client_id: clientId,
        conversation_id: conversationId,
        activity_type: type,
        text: typeof frame.text === "string" ? frame.text : undefined,
        attachments: Array.isArray(frame.attachments) ? frame.attachments : undefined,
        metadata: isObject(frame.metadata) ? frame.metadata : undefined,
      };
    }
    default:
      throw new FrameError("invalid_argument", "type: unknown frame type");
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
