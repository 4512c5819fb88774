/**
 * Token expiries of every socket on one timer, in one-second buckets. A
 * setTimeout per socket costs a Timeout object and, with every socket's delay
 * different, a timer list of its own: a few hundred bytes per connection.
 * Entries are removed when their socket closes, so nothing outlives it.
 */
export function createExpiryWheel<T>(onExpired: (item: T) => void, tickMs = 1_000) {
  const buckets = new Map<number, Set<T>>();
  const bucketOf = new Map<T, number>();
  const timer = setInterval(() => {
    const now = Math.floor(Date.now() / 1000);
    for (const [second, items] of buckets) {
      if (second > now) continue;
      buckets.delete(second);
      for (const item of items) {
        bucketOf.delete(item);
        onExpired(item);
      }
    }
  }, tickMs);
  timer.unref();

  function cancel(item: T): void {
    const second = bucketOf.get(item);
    if (second === undefined) return;
    bucketOf.delete(item);
    const items = buckets.get(second);
    items?.delete(item);
    if (items?.size === 0) buckets.delete(second);
  }

  return {
    /** Calls `onExpired(item)` at (within a second after) `at` ms; replaces an earlier schedule of it. */
    schedule(item: T, at: number): void {
      cancel(item);
      const second = Math.ceil(at / 1000);
      const items = buckets.get(second) ?? new Set<T>();
      buckets.set(second, items.add(item));
      bucketOf.set(item, second);
    },
    cancel,
    get size(): number {
      return bucketOf.size;
    },
    close(): void {
      clearInterval(timer);
      buckets.clear();
      bucketOf.clear();
    },
  };
}

export type ExpiryWheel<T> = ReturnType<typeof createExpiryWheel<T>>;
