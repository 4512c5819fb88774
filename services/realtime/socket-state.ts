import { type EdgePrincipal, UpgradeError, userKeyOf } from "./edge-auth.js";
import { watermarkOf } from "./frames.js";

/** What the edge keeps per socket (uWS user data). */
export interface SocketState {
  principal: EdgePrincipal;
  token: string;
  expiresAt: number;
  ip: string;
  userKey: string;
  watermark?: string;
  feedTenant?: string;
  closed: boolean;
  expiry?: NodeJS.Timeout;
  /** Frames left in this second, and strikes for exceeding it. */
  budget: { left: number; resetAt: number; strikes: number };
  subscriptions: Set<string>;
  /** Topics whose stream is still opening: they count toward the cap already. */
  opening: Set<string>;
}

/** The state of a socket about to be upgraded; refuses a feed or watermark the token does not allow. */
export function newSocketState(
  principal: EdgePrincipal,
  token: string,
  expiresAt: number,
  ip: string,
  query: URLSearchParams,
): SocketState {
  const feedTenant = query.get("tenant") ?? undefined;
  if (feedTenant !== undefined) {
    const canRead = principal.kind === "oauth_client" && principal.scopes.includes("conversations:read");
    if (!canRead || feedTenant !== principal.tenantId)
      throw new UpgradeError("403 Forbidden", "not allowed to read this feed");
  }
  let watermark: string | undefined;
  try {
    watermark = watermarkOf(query.get("watermark") ?? undefined);
  } catch {
    throw new UpgradeError("400 Bad Request", "watermark must be a seq");
  }
  return {
    principal,
    token,
    expiresAt,
    ip,
    userKey: userKeyOf(principal),
    watermark,
    feedTenant,
    closed: false,
    budget: { left: 0, resetAt: 0, strikes: 0 },
    subscriptions: new Set(),
    opening: new Set(),
  };
}
