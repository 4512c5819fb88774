import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { type Activity, ActivityType, type AttachmentSchema } from "../../../gen/converger/v1/conversations_pb.js";
import {
  type AckFrame,
  type ErrorFrame,
  type PublishActivityFrame,
  PublishActivityFrameSchema,
} from "../../../gen/converger/v1/frames_pb.js";
import { StreamError } from "./stream-error.js";

export interface SendInput {
  text?: string;
  /** `message` when absent. */
  activityType?: "message" | "event" | "typing" | ActivityType;
  attachments?: MessageInitShape<typeof AttachmentSchema>[];
  metadata?: JsonObject;
  /** The idempotency key: a retry with the same one is stored once. A random UUID when absent. */
  clientId?: string;
  /** Needed only by tokens that may write to several conversations (OAuth). */
  conversationId?: string;
  /** Who speaks, for an OAuth token (its own client id when absent); a client token always speaks as its user. */
  from?: { id: string; name?: string };
}

const ACTIVITY_TYPES = { message: ActivityType.MESSAGE, event: ActivityType.EVENT, typing: ActivityType.TYPING };
const DEFAULT_TIMEOUT_MS = 30_000;

interface Pending {
  frame: PublishActivityFrame;
  resolve(activity: Activity): void;
  reject(error: StreamError): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Sends that wait for their ack. Every unacked send is written again on each
 * new socket with its client_id: the server stores it once and acks the
 * original, so a lost ack or a send made while disconnected costs nothing.
 */
export function createSendQueue(options: {
  timeoutMs?: number | undefined;
  write(frame: PublishActivityFrame): boolean;
}) {
  const pending = new Map<string, Pending>();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  function settle(clientId: string): Pending | undefined {
    const entry = pending.get(clientId);
    if (!entry) return undefined;
    pending.delete(clientId);
    clearTimeout(entry.timer);
    return entry;
  }

  return {
    add(input: SendInput): Promise<Activity> {
      const clientId = input.clientId ?? globalThis.crypto.randomUUID();
      if (pending.has(clientId))
        return Promise.reject(new StreamError("already_exists", `${clientId} is already being sent`));
      const type = input.activityType ?? "message";
      const frame = create(PublishActivityFrameSchema, {
        clientId,
        activityType: typeof type === "string" ? ACTIVITY_TYPES[type] : type,
        text: input.text ?? "",
        attachments: input.attachments ?? [],
        ...(input.metadata ? { metadata: input.metadata } : {}),
        ...(input.conversationId ? { conversationId: input.conversationId } : {}),
        ...(input.from ? { from: input.from } : {}),
      });
      return new Promise<Activity>((resolve, reject) => {
        // The server may still store a send that timed out: sending again with its clientId answers it.
        const timer = setTimeout(() => {
          settle(clientId)?.reject(
            new StreamError("deadline_exceeded", `no ack for ${clientId} within ${timeoutMs} ms`, { clientId }),
          );
        }, timeoutMs);
        pending.set(clientId, { frame, resolve, reject, timer });
        options.write(frame);
      });
    },
    /** On a new socket: every send still waiting goes out again, in the order it was made. */
    flush(): void {
      for (const entry of pending.values()) if (!options.write(entry.frame)) return;
    },
    ack(frame: AckFrame): void {
      if (frame.activity) settle(frame.clientId)?.resolve(frame.activity);
    },
    /** An error frame naming a pending send rejects it; false when it named none. */
    refuse(frame: ErrorFrame): boolean {
      const entry = frame.clientId === undefined ? undefined : settle(frame.clientId);
      if (!entry) return false;
      const details = { clientId: entry.frame.clientId, ...(frame.retryAfter ? { retryAfter: frame.retryAfter } : {}) };
      entry.reject(new StreamError(frame.code, frame.message, details));
      return true;
    },
    failAll(error: StreamError): void {
      for (const clientId of [...pending.keys()]) settle(clientId)?.reject(error);
    },
  };
}
