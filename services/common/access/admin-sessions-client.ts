import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { AuthService } from "../../../gen/converger/v1/auth_pb.js";
import { createTtlCache } from "../ttl-cache.js";
import { hashSecret } from "./access.js";
import { CLIENT_IP_HEADER } from "./context.js";
import { internalHeaders } from "./internal.js";

// A console page makes a burst of calls per view: one lookup serves them. A sign-out
// clears this node's entry at once and every other node's within this time.
const SESSION_CACHE_MS = 5_000;

/** Resolves console session cookies through the auth service (which owns the sessions). */
export function createAdminSessionsClient(transport: Transport, internalToken: string) {
  const auth = createClient(AuthService, transport);
  const headers = internalHeaders(internalToken);
  const cache = createTtlCache<string | undefined>(SESSION_CACHE_MS);
  return {
    async verify(secret: string): Promise<string | undefined> {
      if (secret.length > 200) return undefined;
      return cache.get(
        hashSecret(secret).toString("base64url"),
        async () => {
          try {
            return (await auth.verifyAdminSession({ secret }, { headers })).id;
          } catch (error) {
            if (ConnectError.from(error).code === Code.Unauthenticated) return undefined;
            throw error;
          }
        },
        (id) => id !== undefined,
      );
    },
    /** Signs a session out (the cookie stops working), and forgets it here at once. */
    async end(secret: string, sourceIp: string): Promise<void> {
      const withAddress = new Headers(headers);
      withAddress.set(CLIENT_IP_HEADER, sourceIp);
      await auth.endAdminSession({ secret }, { headers: withAddress });
      cache.clear();
    },
  };
}

export type AdminSessionsClient = ReturnType<typeof createAdminSessionsClient>;
