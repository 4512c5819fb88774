import { type ApiKeyResolver, hashSecret } from "../common/access.js";
import type { TenantStore } from "./store/tenants.js";

// Bounds how long another process may keep honouring a rotated key or an
// inactive tenant; this process forgets at once (see forget()).
const TTL_MS = 2000;
const MAX_ENTRIES = 10_000;

/**
 * API key → tenant lookups, cached briefly because every request makes one.
 * The store is searched by the key's SHA-256 (an indexed equality on a hash,
 * so no timing leak); the cache is keyed by the key itself to skip hashing.
 */
export function createApiKeyCache(tenants: TenantStore): ApiKeyResolver & { forget(): void } {
  const entries = new Map<string, { value: { tenantId: string; active: boolean } | undefined; expires: number }>();
  return {
    async resolveApiKey(key) {
      const hit = entries.get(key);
      if (hit && hit.expires > Date.now()) return hit.value;
      const row = await tenants.findByKeyHash(hashSecret(key));
      const value = row ? { tenantId: row.id, active: row.status === "active" } : undefined;
      if (entries.size >= MAX_ENTRIES) entries.clear();
      entries.set(key, { value, expires: Date.now() + TTL_MS });
      return value;
    },
    forget() {
      entries.clear();
    },
  };
}
