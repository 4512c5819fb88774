import type { createBackoff } from "./backoff.js";
import type { SocketEnd } from "./edge-socket.js";
import { StreamError } from "./stream-error.js";

/** The stream closes its own socket with this when a seq is missing, to resume from the log. */
export const CLIENT_GAP_CLOSE = 4000;

// A stream refused for its credentials stops: reconnecting cannot fix it and would only hammer the edge.
const FATAL_CLOSES = new Map([
  [4401, "unauthenticated"],
  [4403, "permission_denied"],
]);
const RATE_LIMITED_FLOOR_MS = 5000;

export type NextStep = { stop: StreamError } | { stop?: undefined; delayMs: number; refreshToken?: boolean };

/** What follows the end of a socket (design.md §4 close codes): stop for good, or reconnect after a wait. */
export function afterEnd(
  end: SocketEnd,
  context: { refreshedAfterRefusal: boolean; backoff: ReturnType<typeof createBackoff> },
): NextStep {
  const fatal = FATAL_CLOSES.get(end.code);
  if (fatal) {
    const message = `the edge closed the stream: ${end.code} ${end.reason}`;
    return { stop: new StreamError(fatal, message, { closeCode: end.code }) };
  }
  if (end.refusedStatus === 403)
    return { stop: new StreamError("permission_denied", "the edge refused the stream (403)") };
  if (end.refusedStatus === 401) {
    // One fresh token may fix it (the old one expired while away); a second refusal is final.
    if (context.refreshedAfterRefusal)
      return { stop: new StreamError("unauthenticated", "the edge refused the token (401)") };
    return { delayMs: context.backoff.next(), refreshToken: true };
  }
  if (end.code === 4408) return { delayMs: 0, refreshToken: true };
  if (end.code === CLIENT_GAP_CLOSE) return { delayMs: 0 };
  const rateLimited = end.code === 4429 || end.refusedStatus === 429;
  return { delayMs: context.backoff.next(rateLimited ? Math.min(RATE_LIMITED_FLOOR_MS, context.backoff.maxMs) : 0) };
}
