/**
 * A small read-through cache with a lifetime per entry and a size bound
 * (cleared whole when full: these caches hold lookups that are cheap to redo).
 */
export function createTtlCache<T>(ttlMs: number, maxEntries = 10_000) {
  const entries = new Map<string, { value: T; expires: number }>();
  return {
    /** The live entry for `key`, or `load()`'s value, remembered unless `keep` says otherwise. */
    async get(key: string, load: () => Promise<T>, keep: (value: T) => boolean = () => true): Promise<T> {
      const hit = entries.get(key);
      if (hit && hit.expires > Date.now()) return hit.value;
      const value = await load();
      if (!keep(value)) return value;
      if (entries.size >= maxEntries) entries.clear();
      entries.set(key, { value, expires: Date.now() + ttlMs });
      return value;
    },
    clear(): void {
      entries.clear();
    },
  };
}
