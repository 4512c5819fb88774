import { createContextKey } from "@connectrpc/connect";

/** The authenticated caller of an RPC, set by the access interceptor. */
export type Principal =
  | { kind: "operator"; sessionId?: string }
  | { kind: "api_key"; tenantId: string }
  | { kind: "oauth_client"; tenantId: string; clientId: string; scopes: string[] }
  | { kind: "end_user"; tenantId: string; userId: string; userName: string; conversationId: string; channelId: string }
  | { kind: "channel"; tenantId: string; channelId: string; channelActive: boolean }
  | { kind: "internal" }
  | { kind: "public" };

export const kPrincipal = createContextKey<Principal>({ kind: "public" }, { description: "caller" });
/**
 * The principal the gateway already authenticated this call as, handed to an
 * in-process service through the direct transport's context values (never
 * read from the wire), so the access interceptor need not do it twice.
 */
export const kAuthenticated = createContextKey<Principal | undefined>(undefined, {
  description: "caller authenticated in this process",
});

/**
 * The subject of the tenant access tokens the console mints for the operator
 * (AuthService.CreateTenantAccessToken): such a caller is the operator acting
 * as the tenant. No OAuth client can have it (their ids start with cvc_).
 */
export const OPERATOR_SUBJECT = "operator";
/** The cookie of an operator console session (design.md §10): an operator credential. */
export const ADMIN_SESSION_COOKIE = "cvg_admin_session";

/** Header the gateway sets to the caller's address after applying TRUSTED_PROXIES. */
export const CLIENT_IP_HEADER = "x-converger-client-ip";
/** Response header a handler sets to override the REST success status (e.g. 202, 200 on replay). */
export const HTTP_STATUS_HEADER = "x-converger-http-status";
