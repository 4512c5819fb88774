import { createClient, type Transport } from "@connectrpc/connect";
import { DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { internalHeaders } from "../common/access/internal.js";
import { createTtlCache } from "../common/ttl-cache.js";

// A conversation never changes tenant: a found owner may be remembered long.
const OWNER_TTL_MS = 10 * 60_000;
const MAX_ENTRIES = 10_000;

/** The tenant a conversation belongs to, or undefined when there is no such conversation. */
export type ConversationOwner = (conversationId: string, signal?: AbortSignal) => Promise<string | undefined>;

/**
 * Asks the conversations service (its owner, through DirectoryService) whose
 * a conversation is: uploads keep no copy of conversations and never read
 * their tables.
 */
export function createConversationOwner(transport: Transport, internalToken: string): ConversationOwner {
  const client = createClient(DirectoryService, transport);
  const headers = internalHeaders(internalToken);
  const owners = createTtlCache<string | undefined>(OWNER_TTL_MS, MAX_ENTRIES);
  return (conversationId, signal) =>
    owners.get(
      conversationId,
      async () => {
        const options = signal === undefined ? { headers } : { headers, signal };
        const route = await client.getConversationRoute({ conversationId }, options);
        return route.found ? route.tenantId : undefined;
      },
      // Not found is not remembered: the conversation may be committed a moment later.
      (tenantId) => tenantId !== undefined,
    );
}
