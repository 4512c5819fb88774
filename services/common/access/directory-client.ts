import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { DirectoryService } from "../../../gen/converger/v1/conversations_pb.js";
import { DirectoryChangedFrameSchema } from "../../../gen/converger/v1/frames_pb.js";
import type { Bus } from "../events/bus.js";
import { createTtlCache } from "../ttl-cache.js";
import { internalHeaders } from "./internal.js";

// How long another process may act on a stale answer (rotated key, inactive
// tenant); this process forgets at once on a "directory" bus frame.
const TTL_MS = 2000;
const MAX_ENTRIES = 10_000;

export const DIRECTORY_TOPIC = "directory";

interface ChannelGrant {
  tenantId: string;
  channelId: string;
  channelActive: boolean;
  tenantActive: boolean;
}

/** What the access interceptor needs to know about credentials and tenants. */
export interface CredentialDirectory {
  resolveApiKey(key: string): Promise<{ tenantId: string; active: boolean } | undefined>;
  /** `rateLimitPerMinute` is the tenant's own limit, 0 when it has none. */
  tenantStatus(tenantId: string): Promise<{ exists: boolean; active: boolean; rateLimitPerMinute: number }>;
  resolveChannelSecret(secret: string): Promise<ChannelGrant | undefined>;
}

/**
 * The conversations service's DirectoryService, with short-lived caches
 * because every request looks up its credential.
 */
export function createDirectoryClient(transport: Transport, internalToken: string, bus: Bus): CredentialDirectory {
  const client = createClient(DirectoryService, transport);
  const headers = internalHeaders(internalToken);
  const cache = createTtlCache<unknown>(TTL_MS, MAX_ENTRIES);
  bus.subscribe(DIRECTORY_TOPIC, () => cache.clear());
  const cached = <T>(key: string, load: () => Promise<T>) => cache.get(key, load) as Promise<T>;

  return {
    resolveApiKey: (key) =>
      cached(`k:${key}`, async () => {
        const res = await client.resolveApiKey({ apiKey: key }, { headers });
        return res.found ? { tenantId: res.tenantId, active: res.tenantActive } : undefined;
      }),
    tenantStatus: (tenantId) =>
      cached(`t:${tenantId}`, async () => {
        const res = await client.getTenantStatus({ tenantId }, { headers });
        return { exists: res.exists, active: res.active, rateLimitPerMinute: res.rateLimitPerMinute };
      }),
    resolveChannelSecret: (secret) =>
      // Keyed by the secret's digest: the cache never holds a credential in clear.
      cached(`c:${createHash("sha256").update(secret).digest("base64url")}`, async () => {
        const res = await client.resolveChannelSecret({ secret }, { headers });
        if (!res.found) return undefined;
        const { channelId, tenantId, channelActive, tenantActive } = res;
        return { channelId, tenantId, channelActive, tenantActive };
      }),
  };
}

/** Tells every directory client of this node that credentials or statuses changed. */
export function announceDirectoryChange(bus: Bus): void {
  bus.publish(DIRECTORY_TOPIC, create(DirectoryChangedFrameSchema));
}
