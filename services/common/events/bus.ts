import { create } from "@bufbuild/protobuf";
import {
  ActivityFrameSchema,
  DeliveryFrameSchema,
  DirectoryChangedFrameSchema,
  EventCreatedFrameSchema,
  GapFrameSchema,
  ReadFrameSchema,
  SigningKeysChangedFrameSchema,
  TypingFrameSchema,
} from "../../../gen/converger/v1/frames_pb.js";
import { createTaggedCodec, type TaggedJson } from "./tagged-json.js";

/**
 * Live push of committed changes to subscribers (design.md §5). In one process
 * it is this in-memory bus; with REDIS_URL, a Redis-backed bus with the same
 * shape fans out across nodes. Delivery is best effort: the stored log is the
 * truth and clients recover gaps by watermark.
 */
export interface Bus {
  /** Publishes a frame of frames.proto, built with `create(…FrameSchema, {…})`. */
  publish(topic: string, frame: BusMessage): void;
  /** Subscribers get the frame's public JSON: the very frame the edge writes to its sockets. */
  subscribe(topic: string, handler: (frame: BusFrame) => void): () => void;
  /**
   * Resolves once frames published anywhere on `topic` reach this node's
   * subscribers (immediately in-process; after Redis confirms SUBSCRIBE).
   * A stream reads its starting watermark only after this, so that nothing
   * committed later can slip past both the read and the live feed.
   */
  whenSubscribed(topic: string): Promise<void>;
  /** Throws when the engine behind the bus is unreachable (for /readyz). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

const codec = createTaggedCodec([
  ActivityFrameSchema,
  TypingFrameSchema,
  ReadFrameSchema,
  DeliveryFrameSchema,
  EventCreatedFrameSchema,
  SigningKeysChangedFrameSchema,
  DirectoryChangedFrameSchema,
  GapFrameSchema,
]);

/** The frames that travel the bus (frames.proto). */
export type BusMessage = Parameters<typeof codec.encode>[0];

/** The public JSON of a BusMessage, e.g. `{type:"activity", activity:{…}}` (design.md §4). */
export type BusFrame = TaggedJson;

export const encodeBusFrame = (frame: BusMessage): BusFrame => codec.encode(frame);

/** Decodes a bus frame with its schema (throws an invalid_argument ConnectError for a malformed one). */
export const decodeBusFrame = (frame: BusFrame): BusMessage => codec.decode(frame);

/** Sent to a topic's local subscribers when frames of it were lost: they must resume by watermark. */
export const GAP_FRAME: BusFrame = encodeBusFrame(create(GapFrameSchema));

/** The seq of an activity frame (read from its JSON, which the bus has already checked); undefined for others. */
export function activitySeqOf(frame: BusFrame): bigint | undefined {
  if (frame.type !== "activity") return undefined;
  const seq = (frame.activity as { seq?: unknown } | undefined)?.seq;
  return typeof seq === "string" && /^\d{1,19}$/.test(seq) ? BigInt(seq) : undefined;
}

export const conversationTopic = (conversationId: string) => `conversation:${conversationId}`;
export const tenantTopic = (tenantId: string) => `tenant:${tenantId}`;

/** The in-memory bus; `deliver` hands subscribers a frame already encoded (one from another node). */
export function createLocalBus(
  onError: (error: unknown) => void,
): Bus & { deliver(topic: string, frame: BusFrame): void } {
  const handlers = new Map<string, Set<(frame: BusFrame) => void>>();
  const deliver = (topic: string, frame: BusFrame) => {
    for (const handler of handlers.get(topic) ?? []) {
      try {
        handler(frame);
      } catch (error) {
        onError(error); // one broken subscriber must not starve the others
      }
    }
  };
  return {
    publish(topic, frame) {
      // Encoded once for every subscriber, and not at all for a topic nobody here follows.
      if (handlers.has(topic)) deliver(topic, encodeBusFrame(frame));
    },
    deliver,
    subscribe(topic, handler) {
      const set = handlers.get(topic) ?? new Set();
      handlers.set(topic, set);
      set.add(handler);
      return () => {
        set.delete(handler);
        if (set.size === 0) handlers.delete(topic);
      };
    },
    async whenSubscribed() {},
    async ready() {},
    async close() {
      handlers.clear();
    },
  };
}
