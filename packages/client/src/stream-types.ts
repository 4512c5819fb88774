import type { Activity } from "../../../gen/converger/v1/conversations_pb.js";
import type { Event } from "../../../gen/converger/v1/events_pb.js";
import type { DeliveryFrame, ReadFrame, TypingFrame } from "../../../gen/converger/v1/frames_pb.js";
import type { BackoffOptions } from "./backoff.js";
import type { SendInput } from "./send-queue.js";
import type { StreamError } from "./stream-error.js";

export interface StreamOptions extends BackoffOptions {
  /** The edge's WebSocket URL (`stream_url` as token minting hands it out); default: the gateway's host on port 8081. */
  url?: string;
  /** Replay the bound conversation's activities after this seq (default "0": all of them). */
  watermark?: string;
  /** For OAuth tokens: the conversation to subscribe to at once (see subscribe). */
  conversationId?: string;
  /** For OAuth tokens with conversations:read: follow the tenant's event feed. */
  tenantId?: string;
  /** How long a send waits for its ack before it rejects (default 30 s). */
  sendTimeoutMs?: number;
}

export type StreamState = "connecting" | "open" | "reconnecting" | "closed";

export interface StreamEvents {
  [name: string]: unknown;
  activity: Activity;
  typing: TypingFrame;
  read: ReadFrame;
  delivery: DeliveryFrame;
  event: Event;
  state: StreamState;
  error: StreamError;
}

/** What the stream saw: the proof of its guarantees, and what a dashboard shows. */
export interface StreamStats {
  /** Sockets attempted, refused ones included. */
  connectionAttempts: number;
  /** Activity frames received, duplicates included. */
  activityFrames: number;
  /** Activity frames dropped because their seq was delivered already. */
  duplicates: number;
  /** Times a seq arrived with one missing before it (the stream then resumed from the log). */
  gaps: number;
}

export interface ConvergerStream extends AsyncIterable<Activity> {
  on<K extends keyof StreamEvents>(event: K, handler: (value: StreamEvents[K]) => void): () => void;
  /** Resolves with the stored activity once acked; queued while disconnected. */
  send(input: SendInput): Promise<Activity>;
  /** OAuth tokens: stream a conversation from `watermark` (absent: from now on), across reconnects. */
  subscribe(conversationId: string, watermark?: string): void;
  unsubscribe(conversationId: string): void;
  /** Ends the stream for good; pending sends reject with `cancelled`. */
  close(): void;
  readonly state: StreamState;
  stats(): StreamStats;
}
