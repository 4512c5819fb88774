import { type EdgePrincipal, UpgradeError } from "./edge-auth.js";
import { watermarkOf } from "./frames.js";

/**
 * What the edge keeps per socket (uWS user data). Kept flat and small: it is
 * multiplied by every connection (bench/connections.ts), so no per-socket
 * timers, sets or nested objects; a socket follows one topic in the common case.
 */
export interface SocketState {
  principal: EdgePrincipal;
  /** Forwarded to the conversations service, which authorizes each call itself. */
  token: string;
  expiresAt: number;
  ip: string;
  watermark?: string | undefined;
  feedTenant?: string | undefined;
  closed: boolean;
  /** A send was dropped over the backpressure limit: uWS closes the socket, and the close counts as such. */
  backpressured: boolean;
  /** Frames left in the second ending at budgetResetAt, and strikes for exceeding a second's budget. */
  framesLeft: number;
  budgetResetAt: number;
  strikes: number;
  subscriptions: readonly string[];
  /** Topics whose stream is still opening: they count toward the cap already. */
  opening: readonly string[];
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
    principal: withSharedIds(principal),
    token,
    expiresAt,
    ip,
    watermark,
    feedTenant,
    closed: false,
    backpressured: false,
    framesLeft: 0,
    budgetResetAt: 0,
    strikes: 0,
    subscriptions: [],
    opening: [],
  };
}

/** A copy of a small list without `item`. Lists are replaced, not grown in place: a pushed-to array keeps ~16 slots. */
export function without(list: readonly string[], item: string): string[] {
  return list.filter((entry) => entry !== item);
}

// Ids many sockets carry (tenant, channel): one string each per edge instead of one per socket.
const MAX_SHARED_IDS = 100_000;
const sharedIds = new Map<string, string>();
function shared(id: string): string {
  const known = sharedIds.get(id);
  if (known !== undefined) return known;
  if (sharedIds.size >= MAX_SHARED_IDS) sharedIds.clear();
  sharedIds.set(id, id);
  return id;
}

function withSharedIds(principal: EdgePrincipal): EdgePrincipal {
  return principal.kind === "end_user"
    ? { ...principal, tenantId: shared(principal.tenantId), channelId: shared(principal.channelId) }
    : { ...principal, tenantId: shared(principal.tenantId) };
}
