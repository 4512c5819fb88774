import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { ClientContext } from "./context.js";

/**
 * Exactly one way to authenticate: the union refuses two at once at compile
 * time. `session` is the browser's own operator console cookie (pages under
 * /admin/ on the gateway's origin): nothing is added, the browser sends it.
 */
export type Credentials =
  | { apiKey: string; token?: never; getToken?: never; session?: never }
  | { token: string; apiKey?: never; getToken?: never; session?: never }
  | { getToken: () => Promise<string> | string; apiKey?: never; token?: never; session?: never }
  | { session: true; apiKey?: never; token?: never; getToken?: never };

/**
 * The token source of a context. getToken is asked only when a token is first
 * needed, and asked again when `refresh` is set; concurrent refreshes share one
 * call, so a burst of 401s does not become a burst of token requests.
 */
export function createTokenSource(credentials: Credentials): ClientContext["token"] {
  const { getToken, token } = credentials;
  if (token !== undefined) return async () => token;
  if (getToken === undefined) return async () => undefined;
  let current: Promise<string> | undefined;
  let refreshing = false;
  return (refresh = false) => {
    if (current === undefined || (refresh && !refreshing)) {
      const pending = Promise.resolve().then(getToken);
      current = pending;
      refreshing = refresh;
      const settle = (failed: boolean) => {
        if (current !== pending) return;
        refreshing = false;
        // A failed getToken is not cached: the next call asks again.
        if (failed) current = undefined;
      };
      pending.then(
        () => settle(false),
        () => settle(true),
      );
    }
    return current;
  };
}

/** The credential the context holds, as the gateway reads it on RPCs and raw routes alike. */
export async function credentialHeaders(
  context: Pick<ClientContext, "apiKey" | "token">,
  refresh = false,
): Promise<Record<string, string>> {
  if (context.apiKey !== undefined) return { "x-api-key": context.apiKey };
  const token = await context.token(refresh);
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

/**
 * Adds the credential the gateway expects (design.md §2): `X-API-Key`, or
 * `Authorization: Bearer`. A unary call refused as unauthenticated is retried
 * once with a token fresh from getToken, since tokens expire between calls.
 */
export function credentialsInterceptor(
  context: Pick<ClientContext, "apiKey" | "token">,
  canRefresh: boolean,
): Interceptor {
  return (next) => async (req) => {
    for (const [name, value] of Object.entries(await credentialHeaders(context))) req.header.set(name, value);
    if (context.apiKey !== undefined || !canRefresh || req.stream) return next(req);
    try {
      return await next(req);
    } catch (error) {
      if (ConnectError.from(error).code !== Code.Unauthenticated) throw error;
      req.header.set("authorization", `Bearer ${await context.token(true)}`);
      return next(req);
    }
  };
}
