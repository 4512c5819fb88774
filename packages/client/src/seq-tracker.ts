/** What to do with an activity frame: emit it, drop it (seen already), or resume (one is missing). */
export type Verdict = "deliver" | "duplicate" | "gap";

/**
 * The last seq delivered per conversation. Only a seq exactly one above it is
 * delivered: anything at or below was delivered already (a replay overlapping
 * the live feed, a resend after reconnect), anything further up means a frame
 * went missing and the stream must resume from the log.
 */
export function createSeqTracker() {
  const last = new Map<string, bigint>();
  return {
    /** Starts a conversation at `seq` unless it is followed already (a reconnect keeps its place). */
    start(conversationId: string, seq: bigint): void {
      if (!last.has(conversationId)) last.set(conversationId, seq);
    },
    watermark(conversationId: string): bigint | undefined {
      return last.get(conversationId);
    },
    admit(conversationId: string, seq: bigint): Verdict {
      const previous = last.get(conversationId);
      if (previous !== undefined && seq <= previous) return "duplicate";
      if (previous !== undefined && seq > previous + 1n) return "gap";
      last.set(conversationId, seq);
      return "deliver";
    },
    forget(conversationId: string): void {
      last.delete(conversationId);
    },
  };
}
