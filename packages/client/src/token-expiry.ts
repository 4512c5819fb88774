/**
 * When a JWT expires (ms since the epoch), read from its payload without
 * verifying it: the client only schedules renewal by it, the edge verifies.
 */
export function jwtExpiresAt(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const claims: unknown = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    if (typeof claims === "object" && claims !== null && "exp" in claims && typeof claims.exp === "number") {
      return claims.exp * 1000;
    }
  } catch {
    // Not a JWT we can read: the stream then renews only when the edge closes with 4408.
  }
  return undefined;
}

// Renew a third of the way before the end, at most a minute early: a 15-minute
// token renews at 14 min, a 3-second one at 2 s.
const MAX_RENEW_LEAD_MS = 60_000;

/** How long to wait before renewing a token that expires at `expiresAt`. */
export function renewDelay(expiresAt: number, now = Date.now()): number {
  const left = expiresAt - now;
  return Math.max(0, left - Math.min(MAX_RENEW_LEAD_MS, left / 3));
}
