import { Code, ConnectError } from "@connectrpc/connect";

/** Error metadata key naming the RFC 6749 §5.2 error code. */
export const OAUTH_ERROR_KEY = "x-oauth-error";

/** An OAuth error: the Connect code picks the HTTP status, `error` the body's code. */
export function oauthError(code: Code, error: string, description: string): ConnectError {
  return new ConnectError(description, code, { [OAUTH_ERROR_KEY]: error });
}

export const invalidClient = () => oauthError(Code.Unauthenticated, "invalid_client", "client authentication failed");
export const invalidGrant = (why: string) => oauthError(Code.InvalidArgument, "invalid_grant", why);
export const invalidScope = (why: string) => oauthError(Code.InvalidArgument, "invalid_scope", why);
