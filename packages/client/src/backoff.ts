/** Bounds of a retry delay (reconnects, chunk retries); every wait is a random share of the current bound ("full jitter"). */
export interface BackoffOptions {
  /** The bound of the first wait (default 250 ms). */
  minBackoffMs?: number;
  /** The bound never grows past this (default 30 s). */
  maxBackoffMs?: number;
}

const DEFAULT_MIN_MS = 250;
const DEFAULT_MAX_MS = 30_000;

/**
 * Exponential back-off with full jitter: after a server restart every client
 * would otherwise come back in the same millisecond.
 */
export function createBackoff(options: BackoffOptions = {}) {
  const min = options.minBackoffMs ?? DEFAULT_MIN_MS;
  const max = Math.max(min, options.maxBackoffMs ?? DEFAULT_MAX_MS);
  let failures = 0;
  return {
    /** The next wait in ms; `floorMs` raises it when the server asked for more (4429). */
    next(floorMs = 0): number {
      const bound = Math.min(max, min * 2 ** failures);
      failures++;
      return Math.max(floorMs, Math.round(Math.random() * bound));
    },
    /** A connection that opened starts the next series of waits from the bottom. */
    reset(): void {
      failures = 0;
    },
    get maxMs(): number {
      return max;
    },
  };
}
